import base64
from urllib.parse import unquote, urlsplit

import pyotp
import pytest

from app.security.totp import (
    CodeProblem,
    PairCheck,
    check_code_pair,
    check_single_code,
    code_for_step,
    current_step,
    group_secret,
    new_seed,
    otpauth_uri,
    seconds_left,
)

# A 64-character seed, as CreateVirtualMFADevice returns in Base32StringSeed.
SEED = "JBSWY3DPEHPK3PXPGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQJBSWY3DPEHPK3PXP"
NOW_STEP = 56_666_667
NOW = NOW_STEP * 30 + 12.5  # 12.5 s into the step


def phone(offset_steps: int) -> str:
    """What an authenticator app shows offset_steps steps from now (computed by pyotp)."""
    return pyotp.TOTP(SEED).at((NOW_STEP + offset_steps) * 30)


def pair(offset_steps: int) -> tuple[str, str]:
    return phone(offset_steps), phone(offset_steps + 1)


def check(code1: str, code2: str, **kwargs) -> PairCheck:
    return check_code_pair(seed=SEED, code1=code1, code2=code2, now=NOW, **kwargs)


def unused_code() -> str:
    """A code shown at no step within four hours either side of now."""
    taken = {phone(k) for k in range(-500, 501)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in taken)


# --- seeds, steps, URIs ---------------------------------------------------------------


def test_new_seed_is_base32_with_160_random_bits():
    seed = new_seed()
    assert len(base64.b32decode(seed)) >= 20
    assert len({new_seed() for _ in range(100)}) == 100


def test_current_step_and_seconds_left():
    assert current_step(0) == 0
    assert current_step(29.999) == 0
    assert current_step(30) == 1
    assert current_step(NOW) == NOW_STEP
    assert seconds_left(60) == 30
    assert seconds_left(89.5) == 1
    assert seconds_left(NOW) == 18


def test_code_for_step_matches_what_the_phone_shows():
    assert code_for_step(SEED, NOW_STEP) == phone(0)
    assert code_for_step(SEED.lower(), NOW_STEP + 1) == phone(1)


def test_otpauth_uri_is_read_back_by_an_authenticator():
    uri = otpauth_uri(seed=SEED, issuer="AWS 123456789012", account_name="alice+ops@example.com")
    assert uri.startswith("otpauth://totp/AWS%20123456789012:alice%2Bops%40example.com?")
    parsed = pyotp.parse_uri(uri)
    assert parsed.secret == SEED
    assert parsed.issuer == "AWS 123456789012"
    assert parsed.name == "alice+ops@example.com"
    parts = urlsplit(uri)
    assert unquote(parts.path) == "/AWS 123456789012:alice+ops@example.com"
    assert "+" not in uri  # a "+" would be read as a space by some apps


def test_otpauth_uri_drops_padding_and_spaces_from_the_seed():
    uri = otpauth_uri(seed="jbsw y3dp ehpk 3pxp====", issuer="acme-prod", account_name="bob")
    assert uri == "otpauth://totp/acme-prod:bob?secret=JBSWY3DPEHPK3PXP&issuer=acme-prod"


def test_group_secret():
    assert group_secret("JBSWY3DPEHPK3PXP") == "JBSW Y3DP EHPK 3PXP"
    assert group_secret("jbswy3dpehpk3pxpab") == "JBSW Y3DP EHPK 3PXP AB"
    grouped = group_secret(SEED)
    assert grouped.replace(" ", "") == SEED
    assert all(len(g) == 4 for g in grouped.split(" "))


# --- pairs of codes at enrollment -------------------------------------------------------


@pytest.mark.parametrize("offset", [-2, -1, 0, 1])
def test_consecutive_codes_within_a_step_of_now_are_accepted(offset):
    result = check(*pair(offset))
    assert result == PairCheck(ok=True, step=NOW_STEP + offset)


def test_typical_pair_previous_then_current_step():
    # The user types the first code, waits for it to change, types the second.
    assert check(phone(-1), phone(0)).step == NOW_STEP - 1


def test_codes_with_spaces_are_accepted():
    c1, c2 = pair(0)
    assert check(f"{c1[:3]} {c1[3:]}", f" {c2} ").ok


@pytest.mark.parametrize(
    "bad",
    ["", "12345", "1234567", "abcdef", "12345a", "١٢٣٤٥٦", "１２３４５６", "123-456", "+12345"],
)
def test_anything_but_six_ascii_digits_is_a_format_problem(bad):
    assert check(bad, phone(0)).problem is CodeProblem.FORMAT
    assert check(phone(0), bad).problem is CodeProblem.FORMAT


def test_the_same_code_twice_is_not_consecutive():
    result = check(phone(0), phone(0))
    assert result == PairCheck(ok=False, problem=CodeProblem.NOT_CONSECUTIVE)


@pytest.mark.parametrize(("first", "second"), [(0, -1), (-1, 1), (-2, 2), (1, -2)])
def test_valid_codes_of_non_consecutive_steps_are_not_consecutive(first, second):
    assert check(phone(first), phone(second)).problem is CodeProblem.NOT_CONSECUTIVE


@pytest.mark.parametrize("used", [NOW_STEP - 1, NOW_STEP])
def test_a_pair_touching_a_used_step_is_reused(used):
    result = check(*pair(-1), used_steps={used})
    assert result == PairCheck(ok=False, problem=CodeProblem.REUSED)


def test_used_steps_elsewhere_do_not_block_a_fresh_pair():
    assert check(*pair(0), used_steps={NOW_STEP - 2, NOW_STEP - 1, NOW_STEP + 2}).ok


@pytest.mark.parametrize(
    ("offset", "minutes"),
    [(2, 1), (-3, -2), (20, 10), (-120, -60), (239, 120), (-240, -120)],
)
def test_a_consecutive_pair_far_from_now_reports_the_clock_skew(offset, minutes):
    result = check(*pair(offset))
    assert result == PairCheck(ok=False, problem=CodeProblem.CLOCK_SKEW, skew_minutes=minutes)


def test_skew_beyond_the_search_is_just_wrong():
    assert check(*pair(300)).problem is CodeProblem.WRONG
    assert check(*pair(20), skew_search_steps=10).problem is CodeProblem.WRONG


def test_unknown_codes_are_wrong():
    wrong = unused_code()
    assert check(wrong, phone(0)).problem is CodeProblem.WRONG
    assert check(phone(-1), wrong).problem is CodeProblem.WRONG
    assert check(wrong, wrong) == PairCheck(ok=False, problem=CodeProblem.WRONG)


def test_a_wider_window_accepts_older_pairs():
    assert not check(*pair(-3)).ok
    assert check(*pair(-3), window=2).ok


def test_pair_check_at_step_boundaries():
    start = NOW_STEP * 30.0
    for now in (start, start + 29.999):
        result = check_code_pair(seed=SEED, code1=phone(-1), code2=phone(0), now=now)
        assert result.ok and result.step == NOW_STEP - 1


def test_seed_case_and_spaces_do_not_matter():
    c1, c2 = pair(0)
    seed = group_secret(SEED).lower()
    assert check_code_pair(seed=seed, code1=c1, code2=c2, now=NOW).ok


# --- single codes at admin sign-in ------------------------------------------------------


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_single_code_within_a_step_is_accepted_with_its_step(offset):
    result = check_single_code(seed=SEED, code=phone(offset), now=NOW)
    assert result == PairCheck(ok=True, step=NOW_STEP + offset)


@pytest.mark.parametrize("offset", [-2, 2])
def test_single_code_two_steps_away_is_wrong(offset):
    result = check_single_code(seed=SEED, code=phone(offset), now=NOW)
    assert result == PairCheck(ok=False, problem=CodeProblem.WRONG)


def test_single_code_cannot_be_replayed():
    first = check_single_code(seed=SEED, code=phone(0), now=NOW)
    assert first.ok and first.step is not None
    again = check_single_code(seed=SEED, code=phone(0), now=NOW + 5, used_steps={first.step})
    assert again == PairCheck(ok=False, problem=CodeProblem.REUSED)


def test_single_code_format():
    result = check_single_code(seed=SEED, code="12 34", now=NOW)
    assert result.problem is CodeProblem.FORMAT
    assert check_single_code(seed=SEED, code=" " + phone(0)[:3] + " " + phone(0)[3:], now=NOW).ok

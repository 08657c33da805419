"""TOTP (RFC 6238: SHA-1, 30 s steps, 6 digits) seeds, provisioning URIs and code checks."""

from __future__ import annotations

import enum
import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import quote

import pyotp

STEP_SECONDS = 30
DIGITS = 6

_CODE_RE = re.compile(r"[0-9]{6}")
_SPACES_RE = re.compile(r"\s+")


class CodeProblem(enum.Enum):
    """Why a typed code (or pair of codes) was refused."""

    FORMAT = "format"
    WRONG = "wrong"
    NOT_CONSECUTIVE = "not_consecutive"
    REUSED = "reused"
    CLOCK_SKEW = "clock_skew"


@dataclass(frozen=True)
class PairCheck:
    """Outcome of a code check: the accepted step, or the problem found."""

    ok: bool
    step: int | None = None
    problem: CodeProblem | None = None
    skew_minutes: int | None = None


def new_seed() -> str:
    """Return a fresh base32 seed of 160 random bits for the portal's own admin TOTP."""
    return pyotp.random_base32(length=32)


def normalize_seed(seed: str) -> str:
    """Return the seed upper-cased without spaces or base32 padding."""
    return _SPACES_RE.sub("", seed).rstrip("=").upper()


def current_step(now: float) -> int:
    """Return the TOTP time step that contains the Unix time now."""
    return int(now // STEP_SECONDS)


def seconds_left(now: float) -> int:
    """Return the whole seconds until the code shown at time now changes (1 to 30)."""
    return STEP_SECONDS - int(now % STEP_SECONDS)


def code_for_step(seed: str, step: int) -> str:
    """Return the 6-digit code an authenticator shows during the given step."""
    return _Codes(seed).at(step)


def otpauth_uri(*, seed: str, issuer: str, account_name: str) -> str:
    """Return the otpauth://totp/ URI that authenticator apps read from the QR code."""
    # Everything quoted, "+" and "@" included: apps decode %XX but some read "+" as a space.
    label = f"{quote(issuer, safe='')}:{quote(account_name, safe='')}"
    return (
        f"otpauth://totp/{label}"
        f"?secret={quote(normalize_seed(seed), safe='')}&issuer={quote(issuer, safe='')}"
    )


def group_secret(seed: str) -> str:
    """Return the seed in space-separated groups of four for typing by hand."""
    clean = normalize_seed(seed)
    return " ".join(clean[i : i + 4] for i in range(0, len(clean), 4))


def _clean_code(code: str) -> str | None:
    """Return the code without spaces if it is exactly six ASCII digits, else None."""
    clean = _SPACES_RE.sub("", code)
    return clean if _CODE_RE.fullmatch(clean) else None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


class _Codes:
    """Codes of one seed, computed at most once per step."""

    def __init__(self, seed: str) -> None:
        self._totp = pyotp.TOTP(normalize_seed(seed), digits=DIGITS, interval=STEP_SECONDS)
        self._cache: dict[int, str] = {}

    def at(self, step: int) -> str:
        code = self._cache.get(step)
        if code is None:
            code = self._cache[step] = self._totp.generate_otp(step)
        return code

    def pair_steps(self, code1: str, code2: str, steps: range) -> list[int]:
        """Return every t in steps where code1 is the code of t and code2 that of t + 1."""
        return [t for t in steps if _same(self.at(t), code1) and _same(self.at(t + 1), code2)]


def check_code_pair(
    *,
    seed: str,
    code1: str,
    code2: str,
    now: float,
    used_steps: Collection[int] = (),
    window: int = 1,
    skew_search_steps: int = 2 * 60 * 2,
) -> PairCheck:
    """Check two codes typed one after the other at enrollment; step is that of code1."""
    c1, c2 = _clean_code(code1), _clean_code(code2)
    if c1 is None or c2 is None:
        return PairCheck(ok=False, problem=CodeProblem.FORMAT)
    codes = _Codes(seed)
    now_step = current_step(now)
    # code2 is typed after code1, so the pair may end on the current step (t + 1 == now).
    near = range(now_step - window - 1, now_step + window + 1)
    matches = codes.pair_steps(c1, c2, near)
    if matches:
        fresh = [t for t in matches if t not in used_steps and t + 1 not in used_steps]
        if not fresh:
            return PairCheck(ok=False, problem=CodeProblem.REUSED)
        best = min(fresh, key=lambda t: abs(t - now_step))
        return PairCheck(ok=True, step=best)

    window_steps = range(near.start, near.stop + 1)
    if _valid_in(codes, c1, window_steps) and _valid_in(codes, c2, window_steps):
        return PairCheck(ok=False, problem=CodeProblem.NOT_CONSECUTIVE)

    far = [
        t
        for t in codes.pair_steps(
            c1, c2, range(now_step - skew_search_steps, now_step + skew_search_steps + 1)
        )
        if t not in near
    ]
    if far:
        t = min(far, key=lambda t: abs(t - now_step))
        return PairCheck(
            ok=False, problem=CodeProblem.CLOCK_SKEW, skew_minutes=_minutes(t - now_step)
        )
    return PairCheck(ok=False, problem=CodeProblem.WRONG)


def check_single_code(
    *,
    seed: str,
    code: str,
    now: float,
    used_steps: Collection[int] = (),
    window: int = 1,
) -> PairCheck:
    """Check one code (admin sign-in): within window steps of now and not used before."""
    clean = _clean_code(code)
    if clean is None:
        return PairCheck(ok=False, problem=CodeProblem.FORMAT)
    codes = _Codes(seed)
    now_step = current_step(now)
    steps = range(now_step - window, now_step + window + 1)
    matches = [t for t in steps if _same(codes.at(t), clean)]
    if not matches:
        return PairCheck(ok=False, problem=CodeProblem.WRONG)
    fresh = [t for t in matches if t not in used_steps]
    if not fresh:
        return PairCheck(ok=False, problem=CodeProblem.REUSED)
    return PairCheck(ok=True, step=min(fresh, key=lambda t: abs(t - now_step)))


def _minutes(steps: int) -> int:
    """Return steps as whole minutes, halves rounded away from zero (90 s is 2 minutes)."""
    seconds = abs(steps) * STEP_SECONDS
    sign = 1 if steps >= 0 else -1
    return sign * ((seconds + 30) // 60)


def _valid_in(codes: _Codes, code: str, steps: range) -> bool:
    return any(_same(codes.at(t), code) for t in steps)

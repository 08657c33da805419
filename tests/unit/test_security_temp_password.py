import re
import string
from collections import Counter

import pytest

from app.security.temp_password import _ALL, PasswordPolicy, generate_password

AWS_SYMBOLS = set("!@#$%^&*()_+-=[]{}|'")
AMBIGUOUS = set("0O1lI")
RUNS = 300  # hypothesis is not installed; loops cover the randomness instead


def classes_of(password: str) -> set[str]:
    found = set()
    for c in password:
        if c in string.ascii_uppercase:
            found.add("upper")
        elif c in string.ascii_lowercase:
            found.add("lower")
        elif c in string.digits:
            found.add("digit")
        elif c in AWS_SYMBOLS:
            found.add("symbol")
        else:
            found.add("other")
    return found


AWS_CUSTOM_POLICY = {
    "MinimumPasswordLength": 14,
    "RequireSymbols": True,
    "RequireNumbers": True,
    "RequireUppercaseCharacters": True,
    "RequireLowercaseCharacters": True,
    "AllowUsersToChangePassword": True,
    "ExpirePasswords": False,
    "PasswordReusePrevention": 24,
}


def test_from_aws_reads_the_get_account_password_policy_shape():
    assert PasswordPolicy.from_aws(AWS_CUSTOM_POLICY) == PasswordPolicy(
        minimum_length=14,
        require_symbols=True,
        require_numbers=True,
        require_uppercase=True,
        require_lowercase=True,
    )
    assert PasswordPolicy.from_aws({"MinimumPasswordLength": 6}) == PasswordPolicy(minimum_length=6)


def test_no_policy_means_aws_default_three_classes_of_eight_characters():
    default = PasswordPolicy.from_aws(None)
    assert default.minimum_length == 8
    assert default.is_satisfied_by("Abcdefg1")
    assert default.is_satisfied_by("abcdef1!")
    assert not default.is_satisfied_by("abcdefg1")  # two classes
    assert not default.is_satisfied_by("Abcdef1")  # seven characters
    assert not default.is_satisfied_by("Abcdefg1" * 17)  # 136 characters


def test_is_satisfied_by_applies_each_requirement():
    strict = PasswordPolicy.from_aws(AWS_CUSTOM_POLICY)
    assert strict.is_satisfied_by("Abcdefghijk1!x")
    assert not strict.is_satisfied_by("Abcdefghij1!x")  # 13 characters
    assert not strict.is_satisfied_by("abcdefghijk1!x")  # no upper case
    assert not strict.is_satisfied_by("ABCDEFGHIJK1!X")  # no lower case
    assert not strict.is_satisfied_by("Abcdefghijkl!x")  # no digit
    assert not strict.is_satisfied_by("Abcdefghijk1?x")  # "?" is no IAM symbol
    assert PasswordPolicy(minimum_length=6).is_satisfied_by("aaaaaa")


POLICIES = [
    None,
    PasswordPolicy.from_aws(None),
    PasswordPolicy(),
    PasswordPolicy(minimum_length=6),
    PasswordPolicy.from_aws(AWS_CUSTOM_POLICY),
    PasswordPolicy(minimum_length=20, require_symbols=True),
    PasswordPolicy(minimum_length=37, require_numbers=True, require_lowercase=True),
    PasswordPolicy(minimum_length=128, require_uppercase=True),
]


TYPABLE = re.compile(r"[A-Za-z2-9]{4}(-[A-Za-z2-9]{4,})+")


@pytest.mark.parametrize("policy", POLICIES)
def test_every_generated_password_satisfies_its_policy(policy):
    minimum = policy.minimum_length if policy else 8
    checker = policy or PasswordPolicy.from_aws(None)
    for _ in range(RUNS):
        password = generate_password(policy)
        assert max(minimum, 24) <= len(password) <= 128
        assert classes_of(password) == {"upper", "lower", "digit", "symbol"}
        assert not AMBIGUOUS & set(password)
        assert checker.is_satisfied_by(password)


def test_letters_and_digits_in_groups_of_four_joined_by_one_kind_of_separator():
    for _ in range(RUNS):
        password = generate_password(PasswordPolicy.from_aws(AWS_CUSTOM_POLICY))
        assert TYPABLE.fullmatch(password), password
        assert set(password) - set(_ALL) == {"-"}
        assert all(len(group) == 4 for group in password.split("-"))


@pytest.mark.parametrize("minimum", [24, 25, 29, 30, 99, 124, 125, 127, 128])
def test_long_minimums_get_more_groups_up_to_iams_maximum(minimum):
    password = generate_password(PasswordPolicy(minimum_length=minimum, require_symbols=True))
    assert minimum <= len(password) <= 128
    assert TYPABLE.fullmatch(password), password


def test_length_is_capped_at_iams_maximum():
    assert len(generate_password(PasswordPolicy(minimum_length=200))) == 128


def test_passwords_do_not_repeat():
    assert len({generate_password(None) for _ in range(RUNS)}) == RUNS


def test_all_characters_get_used():
    # Guards against a generator stuck on a small part of its alphabet.
    seen = set("".join(generate_password(None) for _ in range(RUNS)))
    assert seen == set(_ALL) | {"-"}


def test_no_character_is_favoured():
    # A random byte taken modulo the alphabet's 56 characters would make the first 256 % 56 =
    # 32 of them a seventh more likely than the other 24. Letters only: draws without a digit
    # are thrown away, which lifts that class a little.
    text = "".join(generate_password(None) for _ in range(3000)).replace("-", "")
    counts = Counter(text)
    assert len(counts) == 56
    letters = [c for c in _ALL if c.isalpha()]  # 48: the alphabet's order puts them first
    first, rest = letters[:32], letters[32:]
    ratio = (sum(counts[c] for c in first) / 32) / (sum(counts[c] for c in rest) / 16)
    assert 0.93 < ratio < 1.07, ratio

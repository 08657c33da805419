"""Temporary console passwords that satisfy any IAM account password policy and that a person
can type on a phone: letters and digits that cannot be mistaken for one another, in groups of
four joined by hyphens (`Xk7p-m3Rt-...`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

# Every symbol IAM accepts in a password policy's "non-alphanumeric" class.
AWS_SYMBOLS = "!@#$%^&*()_+-=[]{}|'"

# Read off a screen and typed on a phone: no 0/O/o, no 1/l/I.
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_LOWER = "abcdefghijkmnpqrstuvwxyz"
_DIGITS = "23456789"
_ALL = _UPPER + _LOWER + _DIGITS
# The one separator: IAM counts "-" as a symbol, so a policy requiring symbols is met without
# punctuation to hunt for on a phone keyboard; it never needs shell quoting either.
SEPARATOR = "-"
GROUP = 4
_MIN_GROUPS = 5  # 20 random characters from 56: about 116 bits

AWS_MAX_LENGTH = 128


@dataclass(frozen=True)
class PasswordPolicy:
    """The parts of an IAM account password policy that constrain a new password."""

    minimum_length: int = 8
    require_symbols: bool = False
    require_numbers: bool = False
    require_uppercase: bool = False
    require_lowercase: bool = False
    # AWS's default (no custom policy) asks for three of the four classes instead.
    minimum_classes: int = 0

    @classmethod
    def from_aws(cls, d: dict[str, Any] | None) -> PasswordPolicy:
        """Build from GetAccountPasswordPolicy's PasswordPolicy; None means AWS's default."""
        if d is None:
            return cls(minimum_length=8, minimum_classes=3)
        return cls(
            minimum_length=int(d.get("MinimumPasswordLength", 8)),
            require_symbols=bool(d.get("RequireSymbols", False)),
            require_numbers=bool(d.get("RequireNumbers", False)),
            require_uppercase=bool(d.get("RequireUppercaseCharacters", False)),
            require_lowercase=bool(d.get("RequireLowercaseCharacters", False)),
        )

    def is_satisfied_by(self, password: str) -> bool:
        """Tell whether IAM would accept the password under this policy."""
        if not self.minimum_length <= len(password) <= AWS_MAX_LENGTH:
            return False
        has = {
            "upper": any("A" <= c <= "Z" for c in password),
            "lower": any("a" <= c <= "z" for c in password),
            "digit": any("0" <= c <= "9" for c in password),
            "symbol": any(c in AWS_SYMBOLS for c in password),
        }
        required = (
            (self.require_uppercase, "upper"),
            (self.require_lowercase, "lower"),
            (self.require_numbers, "digit"),
            (self.require_symbols, "symbol"),
        )
        if any(wanted and not has[name] for wanted, name in required):
            return False
        return sum(has.values()) >= self.minimum_classes


def _group_sizes(minimum: int) -> list[int]:
    """Groups of four, at least five of them, enough to reach `minimum` with the separators.

    Past IAM's 128 characters no more groups fit: the last group grows instead.
    """
    minimum = min(minimum, AWS_MAX_LENGTH)
    count = max(_MIN_GROUPS, -(-(minimum + 1) // (GROUP + 1)))
    while count * (GROUP + 1) - 1 > AWS_MAX_LENGTH:
        count -= 1
    sizes = [GROUP] * count
    sizes[-1] += max(0, minimum - (count * (GROUP + 1) - 1))
    return sizes


def generate_password(policy: PasswordPolicy | None = None) -> str:
    """Return a random password of upper and lower case letters, digits and hyphens.

    At least 24 characters (five groups of four), longer when the policy's minimum asks for
    it; it has every class IAM knows (the hyphens are its symbols), so it meets any policy.
    Uniform over such passwords: characters drawn uniformly, a draw missing a class thrown
    away (about one in fifteen).
    """
    minimum = policy.minimum_length if policy is not None else 8
    sizes = _group_sizes(minimum)
    while True:
        chars = _uniform(_ALL, sum(sizes))
        if all(any(c in group for c in chars) for group in _CLASSES):
            break
    groups, start = [], 0
    for size in sizes:
        groups.append("".join(chars[start : start + size]))
        start += size
    return SEPARATOR.join(groups)


_CLASSES = (_UPPER, _LOWER, _DIGITS)


def _uniform(alphabet: str, count: int) -> list[str]:
    """`count` characters, each uniform over alphabet (bytes above a multiple are skipped)."""
    size = len(alphabet)
    limit = 256 - 256 % size  # bytes below this map evenly onto the alphabet
    chars: list[str] = []
    while len(chars) < count:
        chars += [alphabet[b % size] for b in secrets.token_bytes(2 * count) if b < limit]
    return chars[:count]

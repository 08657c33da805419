"""Temporary console passwords that satisfy any IAM account password policy."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

# Every symbol IAM accepts in a password policy's "non-alphanumeric" class.
AWS_SYMBOLS = "!@#$%^&*()_+-=[]{}|'"

# Read aloud or off a screen: no 0/O/o, 1/l/I; no "|" (looks like l) and no "'" (breaks
# shell quoting when the password is pasted into a command).
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_LOWER = "abcdefghijkmnpqrstuvwxyz"
_DIGITS = "23456789"
_SYMBOLS = "!@#$%^&*()_+-=[]{}"
_ALL = _UPPER + _LOWER + _DIGITS + _SYMBOLS

AWS_MAX_LENGTH = 128
_TARGET_LENGTH = 20  # ~120 bits from this alphabet


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


def generate_password(policy: PasswordPolicy | None = None) -> str:
    """Return a random password with all four character classes, at least 20 long.

    Uniform over the passwords of that length that have every class: characters drawn
    uniformly, a draw missing a class thrown away (about one in ten). The random bytes come
    from one read of the system's generator per draw, not one per character.
    """
    minimum = policy.minimum_length if policy is not None else 8
    length = min(max(minimum, _TARGET_LENGTH), AWS_MAX_LENGTH)
    while True:
        password = "".join(_uniform(_ALL, length))
        if all(any(c in group for c in password) for group in _CLASSES):
            return password


_CLASSES = (_UPPER, _LOWER, _DIGITS, _SYMBOLS)


def _uniform(alphabet: str, count: int) -> list[str]:
    """`count` characters, each uniform over alphabet (bytes above a multiple are skipped)."""
    size = len(alphabet)
    limit = 256 - 256 % size  # bytes below this map evenly onto the alphabet
    chars: list[str] = []
    while len(chars) < count:
        chars += [alphabet[b % size] for b in secrets.token_bytes(2 * count) if b < limit]
    return chars[:count]

"""Admin portal passwords: argon2id hashes and the rules for choosing one."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Error message keys returned by check_new_admin_password (translated by the web layer).
ERR_TOO_SHORT = "password_too_short"
ERR_TOO_LONG = "password_too_long"
ERR_CONTAINS_EMAIL = "password_contains_email"

MIN_LENGTH = 12
# argon2 hashes any length, but a megabyte password is a cheap way to burn server CPU.
MAX_LENGTH = 1024
# A very short local part ("jo@…") would forbid half the dictionary; only equality counts then.
_MIN_LOCAL_PART_FOR_CONTAINS = 4

_hasher = PasswordHasher()  # argon2id with the RFC 9106 low-memory parameters
# Verified when the account does not exist, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("iam-onboard dummy password")


def hash_password(pw: str) -> str:
    """Return an argon2id hash of the password, salt and parameters included."""
    return _hasher.hash(pw)


def verify_password(stored_hash: str, pw: str) -> bool:
    """Tell whether the password matches the stored hash; False for a malformed hash."""
    try:
        return _hasher.verify(stored_hash, pw)
    except (VerificationError, InvalidHashError):
        return False


def verify_against_dummy(pw: str) -> bool:
    """Spend the time of a real verification for an unknown account; always False."""
    verify_password(_DUMMY_HASH, pw)
    return False


def needs_rehash(stored_hash: str) -> bool:
    """Tell whether the hash was made with parameters weaker than the current ones."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def check_new_admin_password(pw: str, email: str) -> str | None:
    """Return the message key of the first rule the password breaks, or None if it is fine."""
    if len(pw) < MIN_LENGTH:
        return ERR_TOO_SHORT
    if len(pw) > MAX_LENGTH:
        return ERR_TOO_LONG
    folded_pw = pw.casefold()
    folded_email = email.strip().casefold()
    if folded_email:
        local_part = folded_email.rsplit("@", 1)[0]
        if folded_email in folded_pw or folded_pw == local_part:
            return ERR_CONTAINS_EMAIL
        if len(local_part) >= _MIN_LOCAL_PART_FOR_CONTAINS and local_part in folded_pw:
            return ERR_CONTAINS_EMAIL
    return None

"""Admin portal passwords: argon2id hashes and the rules for choosing one."""

from __future__ import annotations

import threading
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Error message keys returned by check_new_admin_password (translated by the web layer).
ERR_TOO_SHORT = "password_too_short"
ERR_TOO_LONG = "password_too_long"
ERR_CONTAINS_EMAIL = "password_contains_email"
ERR_TOO_COMMON = "password_too_common"

MIN_LENGTH = 12
# argon2 hashes any length, but a megabyte password is a cheap way to burn server CPU.
MAX_LENGTH = 1024
# A very short local part ("jo@…") would forbid half the dictionary; only equality counts then.
_MIN_LOCAL_PART_FOR_CONTAINS = 4

# zxcvbn's score (0-4) below which a password is refused: 3 means about 10^8 guesses or more,
# beyond its lists of common and breached passwords, names and words and their variants.
MIN_STRENGTH = 3
# zxcvbn refuses longer input (and its time grows with length); the start is what it judges.
_STRENGTH_PREFIX = 72

_hasher = PasswordHasher()  # argon2id with the RFC 9106 low-memory parameters (64 MiB each)
# At most this many hashes at once; the others wait their turn. Sixteen wrong sign-ins at once
# would otherwise take a gigabyte, and two cores do not hash faster with more in flight.
HASHES_AT_ONCE = 2
_hash_slots = threading.BoundedSemaphore(HASHES_AT_ONCE)


@cache
def _dummy_hash() -> str:
    """Verified when the account does not exist, so both paths take the same time.

    Made on first use, not at import: a CLI command that never signs anyone in spends nothing.
    """
    return hash_password("iam-onboard dummy password")


def hash_password(pw: str) -> str:
    """Return an argon2id hash of the password, salt and parameters included."""
    with _hash_slots:
        return _hasher.hash(pw)


def verify_password(stored_hash: str, pw: str) -> bool:
    """Tell whether the password matches the stored hash; False for a malformed hash."""
    with _hash_slots:
        try:
            return _hasher.verify(stored_hash, pw)
        except (VerificationError, InvalidHashError):
            return False


def verify_against_dummy(pw: str) -> bool:
    """Spend the time of a real verification for an unknown account; always False."""
    verify_password(_dummy_hash(), pw)
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
    # NIST SP 800-63B: refuse passwords on lists of common and breached ones (zxcvbn ships them,
    # with English words, names and keyboard patterns, and sees through l33t and repeats).
    # Imported here: its word lists take ~12 MiB, and only choosing a password needs them.
    from zxcvbn import zxcvbn

    user_inputs = [folded_email, folded_email.rsplit("@", 1)[0], "iam-onboard", "iam", "aws"]
    if zxcvbn(pw[:_STRENGTH_PREFIX], user_inputs=user_inputs)["score"] < MIN_STRENGTH:
        return ERR_TOO_COMMON
    return None

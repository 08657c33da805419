"""TOTP codes of the sandbox's virtual MFA devices, checked as AWS checks them."""

from __future__ import annotations

import hmac
import time

import pyotp

TOTP_STEP_SECONDS = 30
TOTP_ACCEPTED_STEPS = range(-2, 2)  # first code's step relative to now: late or slightly early


def codes_match(seed: str, *codes: str) -> bool:
    """Consecutive TOTP codes of `seed` (one for GetSessionToken, two for EnableMFADevice)."""
    totp = pyotp.TOTP(seed)  # SHA-1, 6 digits, 30 s: what AWS virtual devices use
    now = int(time.time()) // TOTP_STEP_SECONDS
    for step in (now + offset for offset in TOTP_ACCEPTED_STEPS):
        if all(
            hmac.compare_digest(totp.generate_otp(step + i).encode(), code.encode())
            for i, code in enumerate(codes)
        ):
            return True
    return False

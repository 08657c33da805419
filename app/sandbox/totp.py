"""TOTP codes of the sandbox's virtual MFA devices, checked as AWS checks them, on a settable clock.

AWS checks codes against the real time. The sandbox does too unless told otherwise, so that
tests need not wait for the next 30-second step:
  - in-process: `start_sandbox(clock=...)` or `Sandbox.set_clock(...)` (any `() -> datetime`,
    e.g. the clock the test gives the portal);
  - in another process (the demo): POST /moto-api/iam-onboard/clock from loopback, with
    `advance_seconds=N` (moves the clock on) or `reset=1` (back to the real time); GET answers
    the sandbox's time as ISO 8601. The demo's portal runs on this same clock.
Like moto's IAM state, the clock is shared by every sandbox in the process.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pyotp

TOTP_STEP_SECONDS = 30
TOTP_ACCEPTED_STEPS = range(-2, 2)  # first code's step relative to now: late or slightly early
CLOCK_PATH = "/moto-api/iam-onboard/clock"
MAX_ADVANCE = timedelta(days=3660)  # ten years each way is plenty for any test

Clock = Callable[[], datetime]


def real_time() -> datetime:
    return datetime.now(UTC)


_clock: Clock = real_time
_offset = timedelta()


def set_clock(clock: Clock | None) -> None:
    """The clock the sandbox checks codes against from now on (None: the real time again)."""
    global _clock, _offset
    _clock, _offset = clock or real_time, timedelta()


def advance(seconds: float) -> None:
    """Move the sandbox's clock on (the demo's portal, which reads `now`, moves with it)."""
    global _offset
    _offset += timedelta(seconds=seconds)


def now() -> datetime:
    """The sandbox's time: its clock plus any advance."""
    return _clock() + _offset


def codes_match(seed: str, *codes: str) -> bool:
    """Consecutive TOTP codes of `seed` (one for GetSessionToken, two for EnableMFADevice)."""
    totp = pyotp.TOTP(seed)  # SHA-1, 6 digits, 30 s: what AWS virtual devices use
    step_now = int(now().timestamp()) // TOTP_STEP_SECONDS
    for step in (step_now + offset for offset in TOTP_ACCEPTED_STEPS):
        if all(
            hmac.compare_digest(totp.generate_otp(step + i).encode(), code.encode())
            for i, code in enumerate(codes)
        ):
            return True
    return False


class ClockApp:
    """WSGI middleware answering CLOCK_PATH (the sandbox listens on loopback only)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != CLOCK_PATH:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        if environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = parse_qs(environ["wsgi.input"].read(length).decode())
            try:
                seconds = timedelta(seconds=float(form.get("advance_seconds", ["0"])[0]))
                if abs(seconds) > MAX_ADVANCE:
                    raise OverflowError
            except (ValueError, OverflowError):
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [b"advance_seconds must be a number of seconds (ten years at most)\n"]
            if form.get("reset"):
                set_clock(None)
            advance(seconds.total_seconds())
        body = json.dumps({"now": now().isoformat()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

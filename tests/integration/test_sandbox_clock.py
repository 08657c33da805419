"""The sandbox checks TOTP codes against the clock it is given, so no test waits for a new step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyotp
import pytest
from botocore.exceptions import ClientError

from app.sandbox import Sandbox
from tests.helpers import Clock

Iam = Any


def pair_at(seed: str, when: datetime) -> tuple[str, str]:
    """The code of `when` and the next one, as an authenticator app shows them."""
    totp = pyotp.TOTP(seed)
    return totp.at(when), totp.at(when + timedelta(seconds=30))


def new_seed(iam: Iam) -> tuple[str, str]:
    iam.create_user(UserName="alice")
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice")["VirtualMFADevice"]
    return device["SerialNumber"], device["Base32StringSeed"].decode()


def try_enable(iam: Iam, serial: str, pair: tuple[str, str]) -> str:
    try:
        iam.enable_mfa_device(
            UserName="alice",
            SerialNumber=serial,
            AuthenticationCode1=pair[0],
            AuthenticationCode2=pair[1],
        )
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "enabled"


def test_codes_are_checked_against_the_clock_the_test_gives(aws: Sandbox, iam_client: Iam):
    clock = Clock(datetime.now(UTC) + timedelta(hours=1))
    aws.set_clock(clock)
    serial, seed = new_seed(iam_client)
    assert try_enable(iam_client, serial, pair_at(seed, datetime.now(UTC))) == (
        "InvalidAuthenticationCode"
    )
    clock.advance(minutes=5)  # the sandbox follows the clock as the test moves it
    assert try_enable(iam_client, serial, pair_at(seed, clock.now - timedelta(minutes=5))) == (
        "InvalidAuthenticationCode"
    )
    assert try_enable(iam_client, serial, pair_at(seed, clock.now)) == "enabled"


def test_reset_puts_the_sandbox_back_on_the_real_time(aws: Sandbox, iam_client: Iam):
    aws.set_clock(Clock(datetime.now(UTC) + timedelta(hours=1)))
    aws.reset()
    serial, seed = new_seed(iam_client)
    assert try_enable(iam_client, serial, pair_at(seed, datetime.now(UTC))) == "enabled"


def test_a_sandbox_in_another_process_is_moved_on_over_loopback(aws: Sandbox, iam_client: Iam):
    # What a test does to the demo's sandbox (and so to the demo's portal, which runs on it).
    clock_url = aws.url + "/moto-api/iam-onboard/clock"
    before = datetime.fromisoformat(httpx.get(clock_url).json()["now"])
    moved = httpx.post(clock_url, data={"advance_seconds": "600"})
    assert moved.status_code == 200
    now = datetime.fromisoformat(moved.json()["now"])
    assert timedelta(seconds=600) <= now - before < timedelta(seconds=660)
    assert abs(aws.now() - now) < timedelta(seconds=60)
    serial, seed = new_seed(iam_client)
    assert try_enable(iam_client, serial, pair_at(seed, datetime.now(UTC))) == (
        "InvalidAuthenticationCode"
    )
    assert try_enable(iam_client, serial, pair_at(seed, now)) == "enabled"

    back = httpx.post(clock_url, data={"reset": "1"}).json()["now"]
    assert abs(datetime.fromisoformat(back) - datetime.now(UTC)) < timedelta(seconds=60)


@pytest.mark.parametrize("value", ["soon", "nan", "1e300", "-1e12"])
def test_a_clock_move_that_is_not_a_number_changes_nothing(aws: Sandbox, value: str):
    clock_url = aws.url + "/moto-api/iam-onboard/clock"
    r = httpx.post(clock_url, data={"advance_seconds": value})
    assert r.status_code == 400
    assert abs(aws.now() - datetime.now(UTC)) < timedelta(seconds=60)

"""The sandbox as slow, eventually consistent and throttled as AWS, over real HTTP.

Each test starts its own sandbox with the mode it looks at; the clock and the randomness are
injected (a hand-moved clock, a seeded random.Random), so only the latency test waits, and only
for the latency it asks for.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pyotp
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from app.sandbox import SANDBOX_CREDENTIALS, Sandbox, start_sandbox
from app.sandbox.realism import RealismSettings
from tests.helpers import CLI, clean_env, csrf_of, start_demo

Client = Any
ONE_TRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


class Ticks:
    """The sandbox's monotonic clock, moved by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def client(box: Sandbox, service: str = "iam") -> Client:
    return boto3.client(
        service,
        endpoint_url=box.url,
        region_name="us-east-1",
        config=ONE_TRY,
        **SANDBOX_CREDENTIALS,
    )


def code_of(call: Any, **params: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def sandbox_with() -> Iterator[Any]:
    started: list[Sandbox] = []

    def start(settings: RealismSettings) -> Sandbox:
        box = start_sandbox(realism=settings)
        started.append(box)
        box.reset()
        return box

    yield start
    for box in started:
        box.stop()


# --- latency ------------------------------------------------------------------------------


def test_every_iam_and_sts_call_waits_the_latency_with_jitter(sandbox_with: Any):
    waits: list[float] = []
    box = sandbox_with(RealismSettings(latency_ms=80, sleep=waits.append, rng=random.Random(4)))
    iam, sts = client(box), client(box, "sts")
    iam.create_user(UserName="slow")
    iam.get_user(UserName="slow")
    sts.get_caller_identity()
    with pytest.raises(ClientError):
        iam.get_user(UserName="nobody")  # errors take as long as answers
    assert len(waits) == 4
    assert all(0.064 <= w <= 0.096 for w in waits), waits
    assert len(set(waits)) == 4  # jittered, not a constant


def test_latency_is_felt_by_the_caller(sandbox_with: Any):
    calls = 5

    def timed(box: Sandbox) -> float:
        iam = client(box)
        iam.list_users()  # the connection is set up outside the measure
        start = time.perf_counter()
        for _ in range(calls):
            iam.list_users()
        return time.perf_counter() - start

    fast = timed(sandbox_with(RealismSettings()))
    slow = timed(sandbox_with(RealismSettings(latency_ms=60)))
    # Never less than the latency asked (-20 %); no more than a few times what it adds.
    assert slow - fast >= calls * 0.060 * 0.8 - 0.01
    assert slow <= 4 * (fast + calls * 0.060 * 1.2), (fast, slow)


# --- throttling ---------------------------------------------------------------------------


def test_the_account_gets_its_burst_then_throttling_then_its_rate(sandbox_with: Any):
    clock = Ticks()
    box = sandbox_with(RealismSettings(rate=2, burst=3, clock=clock))
    alice, bob = client(box), client(box)  # two callers, one account
    alice.list_users()
    bob.list_users()
    alice.create_user(UserName="third")
    assert code_of(bob.list_users) == ("Throttling", 400)
    with pytest.raises(ClientError, match="Rate exceeded"):
        alice.create_user(UserName="refused")
    clock.now += 0.5  # one call's worth at 2 per second
    bob.get_user(UserName="third")
    assert code_of(alice.list_users) == ("Throttling", 400)
    clock.now += 10  # refills up to the burst, no further
    for _ in range(3):
        alice.list_users()
    assert code_of(bob.list_users) == ("Throttling", 400)
    clock.now += 10
    names = [u["UserName"] for u in alice.list_users()["Users"]]
    assert names == ["third"]  # the throttled CreateUser changed nothing


def test_sts_is_not_counted_against_the_iam_bucket(sandbox_with: Any):
    box = sandbox_with(RealismSettings(rate=1, burst=1, clock=Ticks()))
    sts = client(box, "sts")
    for _ in range(3):
        sts.get_caller_identity()
    client(box).list_users()


def test_a_reset_refills_the_bucket(sandbox_with: Any):
    box = sandbox_with(RealismSettings(rate=1, burst=1, clock=Ticks()))
    iam = client(box)
    iam.list_users()
    assert code_of(iam.list_users)[0] == "Throttling"
    box.reset()
    iam.list_users()


# --- eventual consistency -----------------------------------------------------------------


def _visible_after(clock: Ticks, probe: Any, step: float = 0.05, window: float = 3.0) -> float:
    """Seconds until probe() stops failing, moving the clock; it must fail at first."""
    start = clock.now
    assert not probe(), "the write was seen at once"
    while not probe():
        clock.now += step
        assert clock.now - start <= window + step, "still unseen after the window"
    return clock.now - start


def _gets(call: Any, **params: Any) -> Any:
    def probe() -> bool:
        try:
            call(**params)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "NoSuchEntity"
            return False
        return True

    return probe


def test_a_created_user_is_no_such_entity_for_part_of_the_window(sandbox_with: Any):
    clock = Ticks()
    box = sandbox_with(RealismSettings(consistency_ms=3000, clock=clock, rng=random.Random(11)))
    iam = client(box)
    iam.create_user(UserName="newhire")
    assert code_of(iam.get_user, UserName="newhire") == ("NoSuchEntity", 404)
    assert "newhire" not in [u["UserName"] for u in iam.list_users()["Users"]]
    # A write naming the unseen user fails, and changes nothing.
    iam.create_group(GroupName="MFA")
    assert code_of(iam.add_user_to_group, GroupName="MFA", UserName="newhire")[0] == (
        "NoSuchEntity"
    )
    unseen = _visible_after(clock, _gets(iam.get_user, UserName="newhire"))
    assert 0 < unseen <= 3.0
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["newhire"]
    assert iam.get_group(GroupName="MFA")["Users"] == []


def test_each_user_is_unseen_for_its_own_time(sandbox_with: Any):
    clock = Ticks()
    box = sandbox_with(RealismSettings(consistency_ms=3000, clock=clock, rng=random.Random(5)))
    iam = client(box)
    for name in ("u1", "u2", "u3", "u4"):
        iam.create_user(UserName=name)
    seen_at: dict[str, float] = {}
    start = clock.now
    while len(seen_at) < 4 and clock.now - start <= 3.05:
        listed = {u["UserName"] for u in iam.list_users()["Users"]}
        for name in listed - seen_at.keys():
            seen_at[name] = clock.now - start
        clock.now += 0.05
    assert set(seen_at) == {"u1", "u2", "u3", "u4"}
    assert len(set(seen_at.values())) > 1, seen_at


def test_membership_login_profile_and_devices_are_unseen_then_seen(sandbox_with: Any):
    clock = Ticks()
    box = sandbox_with(RealismSettings(consistency_ms=3000, clock=clock, rng=random.Random(2)))
    iam = client(box)
    iam.create_user(UserName="ana")
    iam.create_group(GroupName="MFA")
    clock.now += 3.1  # the user is seen by now

    iam.add_user_to_group(GroupName="MFA", UserName="ana")
    assert iam.get_group(GroupName="MFA")["Users"] == []
    assert iam.list_groups_for_user(UserName="ana")["Groups"] == []
    _visible_after(clock, lambda: bool(iam.get_group(GroupName="MFA")["Users"]))
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="ana")["Groups"]] == ["MFA"]

    iam.create_login_profile(UserName="ana", Password="Sandbox-only-pw-1!")
    assert code_of(iam.get_login_profile, UserName="ana") == ("NoSuchEntity", 404)
    _visible_after(clock, _gets(iam.get_login_profile, UserName="ana"))

    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="ana")["VirtualMFADevice"]
    serial, seed = device["SerialNumber"], device["Base32StringSeed"].decode()
    assert iam.list_virtual_mfa_devices()["VirtualMFADevices"] == []
    totp = pyotp.TOTP(seed)
    now = time.time()
    codes = {"AuthenticationCode1": totp.at(now - 30), "AuthenticationCode2": totp.at(now)}
    enable = {"UserName": "ana", "SerialNumber": serial, **codes}
    assert code_of(iam.enable_mfa_device, **enable)[0] == "NoSuchEntity"
    _visible_after(clock, lambda: bool(iam.list_virtual_mfa_devices()["VirtualMFADevices"]))

    iam.enable_mfa_device(**enable)
    assert iam.list_mfa_devices(UserName="ana")["MFADevices"] == []
    (listed,) = iam.list_virtual_mfa_devices()["VirtualMFADevices"]
    assert "User" not in listed  # still looks unassigned
    assert iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"] == []
    _visible_after(clock, lambda: bool(iam.list_mfa_devices(UserName="ana")["MFADevices"]))
    (listed,) = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
    assert listed["User"]["UserName"] == "ana"


def test_a_failed_write_hides_nothing_and_a_reset_forgets_writes(sandbox_with: Any):
    clock = Ticks()
    box = sandbox_with(RealismSettings(consistency_ms=3000, clock=clock, rng=random.Random(9)))
    iam = client(box)
    iam.create_user(UserName="old")
    clock.now += 3.1
    assert code_of(iam.create_user, UserName="OLD")[0] == "EntityAlreadyExists"
    iam.get_user(UserName="old")
    iam.create_user(UserName="fresh")
    box.reset()
    iam.create_user(UserName="fresh")  # a new write after the reset: unseen again
    assert code_of(iam.get_user, UserName="fresh")[0] == "NoSuchEntity"


# --- the environment and the demo -----------------------------------------------------------


def test_the_environment_turns_the_modes_on_wherever_the_sandbox_starts(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("IAM_ONBOARD_SANDBOX_RATE", "0.001")  # no refill within the test
    monkeypatch.setenv("IAM_ONBOARD_SANDBOX_BURST", "2")
    monkeypatch.setenv("IAM_ONBOARD_SANDBOX_CONSISTENCY_MS", "600000")
    monkeypatch.setenv("IAM_ONBOARD_SANDBOX_LATENCY_MS", "1")
    with start_sandbox() as box:
        assert box.realism is not None
        settings = box.realism.settings
        assert (settings.latency_ms, settings.consistency_ms) == (1, 600000)
        assert (settings.rate, settings.bucket_size) == (0.001, 2)
        box.reset()
        iam = client(box)
        iam.create_user(UserName="env")
        # Unseen: the draw is somewhere in ten minutes, which this call does not outlast.
        assert code_of(iam.get_user, UserName="env") == ("NoSuchEntity", 404)
        assert code_of(iam.list_users) == ("Throttling", 400)


def test_without_the_environment_the_sandbox_is_instant_and_consistent(
    monkeypatch: pytest.MonkeyPatch,
):
    for name in ("LATENCY_MS", "CONSISTENCY_MS", "RATE", "BURST"):
        monkeypatch.delenv(f"IAM_ONBOARD_SANDBOX_{name}", raising=False)
    with start_sandbox() as box:
        assert box.realism is None
        box.reset()
        iam = client(box)
        iam.create_user(UserName="now")
        assert iam.get_user(UserName="now")["User"]["UserName"] == "now"


def test_a_wrong_environment_value_stops_the_sandbox_from_starting(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("IAM_ONBOARD_SANDBOX_RATE", "ten")
    with pytest.raises(ValueError, match="IAM_ONBOARD_SANDBOX_RATE"):
        start_sandbox()


def test_demo_refuses_a_negative_option():
    result = subprocess.run(
        [*CLI, "demo", "--iam-rate", "-1"], env=clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "--iam-rate" in result.stderr and "number ≥ 0" in result.stderr


@pytest.mark.slow  # starts iam-onboard demo
def test_demo_with_latency_enrolls_a_newcomer(tmp_path: Path):
    # The rate from the environment, the latency from the option (over the environment's).
    env = clean_env(IAM_ONBOARD_SANDBOX_RATE="1000", IAM_ONBOARD_SANDBOX_LATENCY_MS="5")
    demo = start_demo(tmp_path, "--iam-latency-ms", "80", "--iam-burst", "900", env=env)
    try:
        assert any("Sandbox IAM latency: 80 ms" in line for line in demo.output), demo.output
        assert any("1000 calls per second, 900 at once" in line for line in demo.output)
        iam = client_at(demo.iam_url)
        start = time.perf_counter()
        iam.list_users()
        assert time.perf_counter() - start >= 0.064  # felt from outside the demo too
        invited = demo.cli("invite", "newhire", "--email", "newhire@example.com")
        assert invited.returncode == 0, invited.stderr
        link = invited.stdout.strip().splitlines()[-1]
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            landing = browser.get(link)
            scan = browser.post(link, data={"csrf_token": csrf_of(landing.text)})
            assert scan.status_code == 200, scan.text
            seed = _seed(scan.text)
            totp, now = pyotp.TOTP(seed), time.time()
            done = browser.post(
                demo.portal_url + "/enroll/verify",
                data={
                    "csrf_token": csrf_of(scan.text),
                    "code1": totp.at(now - 30),
                    "code2": totp.at(now),
                },
            )
            assert done.status_code == 200, done.text
            assert 'id="temp-password"' in done.text
        assert len(iam.list_mfa_devices(UserName="newhire")["MFADevices"]) == 1
        groups = [g["GroupName"] for g in iam.list_groups_for_user(UserName="newhire")["Groups"]]
        assert groups == ["MFA"]
        iam.get_login_profile(UserName="newhire")
    finally:
        demo.stop()


def _seed(html: str) -> str:
    grouped = re.search(r'id="secret"[^>]*>([A-Z2-7 ]+)</code>', html)
    assert grouped, html
    return grouped.group(1).replace(" ", "")


def client_at(url: str) -> Client:
    return boto3.client(
        "iam", endpoint_url=url, region_name="us-east-1", config=ONE_TRY, **SANDBOX_CREDENTIALS
    )

"""The sandbox's realism parts on their own: the token bucket, the consistency window, settings."""

from __future__ import annotations

import random

import pytest

from app.sandbox.consistency import ConsistencyWindow, NotYetVisible, check_visible, record_write
from app.sandbox.realism import RealismSettings, TokenBucket, settings_from_env, settings_with


class Ticks:
    """A monotonic clock moved by hand, in seconds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_gives_its_burst_at_once_then_refuses():
    clock = Ticks()
    bucket = TokenBucket(rate=2, size=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    assert not bucket.take()  # refusals cost nothing and give nothing back


def test_the_bucket_refills_at_its_rate_up_to_its_size():
    clock = Ticks()
    bucket = TokenBucket(rate=4, size=3, clock=clock)
    while bucket.take():
        pass
    clock.now += 0.2  # 0.8 of a token
    assert not bucket.take()
    clock.now += 0.05  # one token
    assert bucket.take()
    assert not bucket.take()
    clock.now += 1.0  # there's room for 4 more, but only 3 fit
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_bucket_needs_a_rate_and_a_size():
    with pytest.raises(ValueError):
        TokenBucket(rate=0, size=1, clock=Ticks())
    with pytest.raises(ValueError):
        TokenBucket(rate=1, size=0, clock=Ticks())


def test_a_write_is_unseen_for_a_random_part_of_the_window_then_seen():
    clock = Ticks()
    window = ConsistencyWindow(3000, clock, random.Random(7))
    unseen = window.wrote("user", "alice")
    assert unseen == random.Random(7).uniform(0, 3.0)  # the seeded draw, within the window
    assert 0 < unseen <= 3.0
    assert window.unseen("user", "alice") and window.pending()
    assert not window.unseen("user", "bob")
    clock.now += unseen - 0.001
    assert window.unseen("user", "alice")
    clock.now += 0.002
    assert not window.unseen("user", "alice") and not window.pending()


def test_each_entity_draws_its_own_part_of_the_window():
    window = ConsistencyWindow(3000, Ticks(), random.Random(1))
    draws = {window.wrote("user", f"u{i}") for i in range(20)}
    assert len(draws) == 20 and max(draws) <= 3.0


def test_a_reset_window_hides_nothing():
    window = ConsistencyWindow(3000, Ticks(), random.Random(1))
    window.wrote("user", "alice")
    window.clear()
    assert not window.unseen("user", "alice")


def test_calls_naming_an_unseen_entity_answer_no_such_entity():
    window = ConsistencyWindow(3000, Ticks(), random.Random(3))
    record_write(window, "CreateUser", {"UserName": "alice"}, b"")
    for action in ("GetUser", "AddUserToGroup", "CreateLoginProfile", "ListMFADevices"):
        with pytest.raises(NotYetVisible, match="The user with name alice cannot be found"):
            check_visible(window, action, {"UserName": "alice"})
    check_visible(window, "CreateUser", {"UserName": "alice"})  # moto answers that one
    check_visible(window, "GetUser", {"UserName": "bob"})

    record_write(window, "CreateLoginProfile", {"UserName": "bob"}, b"")
    with pytest.raises(NotYetVisible, match="Login Profile for User bob"):
        check_visible(window, "GetLoginProfile", {"UserName": "bob"})
    check_visible(window, "GetUser", {"UserName": "bob"})  # the user was there before

    created = b"<VirtualMFADevice><SerialNumber>arn:aws:iam::1:mfa/x</SerialNumber>"
    record_write(window, "CreateVirtualMFADevice", {"VirtualMFADeviceName": "x"}, created)
    with pytest.raises(NotYetVisible, match="serial number arn:aws:iam::1:mfa/x"):
        check_visible(window, "EnableMFADevice", {"SerialNumber": "arn:aws:iam::1:mfa/x"})
    assert NotYetVisible.status == 404 and NotYetVisible.code == "NoSuchEntity"


def test_settings_come_from_the_environment_and_options_override_them():
    env = {
        "IAM_ONBOARD_SANDBOX_LATENCY_MS": "80",
        "IAM_ONBOARD_SANDBOX_CONSISTENCY_MS": "3000",
        "IAM_ONBOARD_SANDBOX_RATE": "10",
        "IAM_ONBOARD_SANDBOX_BURST": "",
    }
    settings = settings_from_env(env)
    assert (settings.latency_ms, settings.consistency_ms, settings.rate) == (80, 3000, 10)
    assert settings.active and settings.bucket_size == 10  # no burst: the rate, rounded up
    given = settings_with(latency_ms=0, burst=40, environ=env)
    assert (given.latency_ms, given.consistency_ms, given.bucket_size) == (0, 3000, 40)
    assert not settings_from_env({}).active
    assert RealismSettings(rate=0.5).bucket_size == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IAM_ONBOARD_SANDBOX_LATENCY_MS", "fast"),
        ("IAM_ONBOARD_SANDBOX_CONSISTENCY_MS", "-1"),
        ("IAM_ONBOARD_SANDBOX_RATE", "inf"),
        ("IAM_ONBOARD_SANDBOX_BURST", "2.5"),
    ],
)
def test_a_wrong_environment_value_is_refused_by_name(name: str, value: str):
    with pytest.raises(ValueError, match=name):
        settings_from_env({name: value})

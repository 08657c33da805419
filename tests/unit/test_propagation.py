"""Waiting for IAM to show the portal's own writes: bounded, jittered, never on the wall clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.aws.errors import AccessDenied, NoSuchEntity
from app.aws.iam import IamGateway
from app.aws.propagation import LONGEST_PAUSE, Propagation


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds


def propagation(seconds: float, time: FakeTime, jitter: float = 0.5) -> Propagation:
    return Propagation(seconds, sleep=time.sleep, clock=time.clock, jitter=lambda: jitter)


def unseen_for(tries: int, answer: Any = "seen") -> Callable[[], Any]:
    """A call that answers NoSuchEntity `tries` times, then `answer`."""
    calls = {"n": 0}

    def call() -> Any:
        calls["n"] += 1
        if calls["n"] <= tries:
            raise NoSuchEntity("The user with name newhire cannot be found.", action="GetUser")
        return answer

    call.calls = calls  # type: ignore[attr-defined]
    return call


def test_a_write_seen_at_once_costs_no_pause():
    time = FakeTime()
    assert propagation(30, time).retry(unseen_for(0)) == "seen"
    assert time.slept == []


def test_an_unseen_entity_is_retried_until_it_shows():
    time = FakeTime()
    call = unseen_for(4)
    assert propagation(30, time).retry(call) == "seen"
    assert call.calls["n"] == 5  # type: ignore[attr-defined]
    assert len(time.slept) == 4
    # Growing pauses: a second or two apart at most, never a busy loop.
    assert time.slept == sorted(time.slept)
    assert all(0.05 <= p <= LONGEST_PAUSE for p in time.slept)


def test_the_pauses_are_jittered():
    slow, fast = FakeTime(), FakeTime()
    propagation(30, slow, jitter=0.99).retry(unseen_for(3))
    propagation(30, fast, jitter=0.0).retry(unseen_for(3))
    assert all(a > b for a, b in zip(slow.slept, fast.slept, strict=True))


def test_the_wait_is_bounded_by_the_propagation_time():
    time = FakeTime()
    never = unseen_for(10_000)
    with pytest.raises(NoSuchEntity):
        propagation(30, time).retry(never)
    assert sum(time.slept) == pytest.approx(30)  # the last pause ends at the deadline, no later
    assert time.now == pytest.approx(130)
    # Capped pauses: ~2 s apart at the end, so about twenty calls in thirty seconds.
    assert 15 <= never.calls["n"] <= 40  # type: ignore[attr-defined]


def test_no_propagation_time_means_no_retry():
    time = FakeTime()
    call = unseen_for(1)
    with pytest.raises(NoSuchEntity):
        propagation(0, time).retry(call)
    assert call.calls["n"] == 1 and time.slept == []  # type: ignore[attr-defined]


def test_other_errors_are_not_retried():
    time = FakeTime()

    def denied() -> None:
        raise AccessDenied("no", action="AddUserToGroup")

    with pytest.raises(AccessDenied):
        propagation(30, time).retry(denied)
    assert time.slept == []


def test_a_read_is_repeated_until_it_shows_the_write_or_the_time_is_spent():
    time = FakeTime()
    answers = iter([False, False, True])
    assert propagation(30, time).until(lambda: next(answers)) is True
    assert len(time.slept) == 2
    time = FakeTime()
    assert propagation(5, time).until(lambda: False) is False
    assert sum(time.slept) == pytest.approx(5)


class FakeIam:
    """A boto3 IAM client whose user appears only after `unseen` calls."""

    def __init__(self, unseen: int) -> None:
        self.unseen = unseen
        self.calls = 0

    def add_user_to_group(self, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls <= self.unseen:
            error = {"Error": {"Code": "NoSuchEntity", "Message": "cannot be found"}}
            raise ClientError(error, "AddUserToGroup")  # type: ignore[arg-type]
        return {"ResponseMetadata": {"RequestId": f"req-{self.calls}"}}


def test_only_the_just_created_gateway_retries():
    time = FakeTime()
    client = FakeIam(unseen=2)
    iam = IamGateway(client, None, propagation=propagation(30, time))
    with pytest.raises(NoSuchEntity):
        iam.add_user_to_group("newhire", "MFA")  # not said to be the portal's: IAM's answer
    assert client.calls == 1 and time.slept == []
    made = iam.just_created()
    made.add_user_to_group("newhire", "MFA")
    assert client.calls == 3  # one more NoSuchEntity, then it showed
    assert made.last_request_id == "req-3"
    assert len(time.slept) == 1


def test_a_gateway_without_a_propagation_time_never_waits():
    client = FakeIam(unseen=1)
    with pytest.raises(NoSuchEntity):
        IamGateway(client, None).just_created().add_user_to_group("newhire", "MFA")
    assert client.calls == 1


class LostAnswerIam:
    """DeleteUser whose first attempt's answer was lost: botocore's retry finds it gone."""

    def __init__(self, retries: int) -> None:
        self.retries = retries
        self.calls = 0

    def delete_user(self, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls += 1
        error = {
            "Error": {"Code": "NoSuchEntity", "Message": "cannot be found"},
            "ResponseMetadata": {"RetryAttempts": self.retries},
        }
        raise ClientError(error, "DeleteUser")  # type: ignore[arg-type]


def test_a_removal_found_gone_on_botocores_retry_is_done_not_waited_for():
    time = FakeTime()
    lost = LostAnswerIam(retries=1)
    iam = IamGateway(lost, None, propagation=propagation(30, time)).just_created()
    with pytest.raises(NoSuchEntity):
        iam.delete_user("leaver")
    assert lost.calls == 1 and time.slept == []
    # The first attempt's own NoSuchEntity: the user may not be seen yet, so it is waited for.
    unseen = LostAnswerIam(retries=0)
    iam = IamGateway(unseen, None, propagation=propagation(3, time)).just_created()
    with pytest.raises(NoSuchEntity):
        iam.delete_user("newhire")
    assert unseen.calls > 1 and sum(time.slept) == pytest.approx(3)

"""/metrics as a Prometheus server scrapes it: over real HTTP, after a real journey on the sandbox.

Counters live in this test process and add up across tests: each test compares a scrape after
its journey with one before it.
"""

from __future__ import annotations

import httpx
import pyotp
import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from app import metrics
from app.aws.client import make_clients
from app.config import load_settings
from app.sandbox import start_sandbox
from app.sandbox.realism import RealismSettings
from app.services.enrollment import CodeRejected, EnrollmentLocked, verify_codes
from app.services.housekeeping import run_housekeeping
from app.services.invitations import invite_user
from app.services.portal import Actor, Portal
from tests.conftest import METRICS_TOKEN
from tests.helpers import serve_in_thread
from tests.integration.lifecycle_support import NEW_HIRE, enroll, start

TOKEN = METRICS_TOKEN  # the `metered` portal's (tests/conftest.py)
ADMIN = Actor("admin@example.com")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str, token: str = TOKEN) -> Samples:
    r = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version="), r.headers
    return parsed(r.content)


def parsed(text: bytes) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_after_a_journey_metrics_show_invitations_enrollments_and_iam_latency_by_action(
    metered: Portal,
):
    with serve_in_thread(metered) as base:
        before = scrape(base)
        # One enrollment all the way, one that locks after five wrong pairs of codes.
        link = invite_user(metered, user_name="alice", email="a@example.com", actor=ADMIN).link
        enroll(metered, link)
        link = invite_user(metered, user_name="bob", email="b@example.com", actor=ADMIN).link
        enrollment_id, _seed = start(metered, link)
        wrong = pyotp.TOTP(pyotp.random_base32()).now()
        for _ in range(5):
            with pytest.raises((CodeRejected, EnrollmentLocked)):
                verify_codes(
                    metered, enrollment_id=enrollment_id, code1=wrong, code2=wrong, actor=NEW_HIRE
                )
        run_housekeeping(metered, holder="test")
        after = scrape(base)

    assert grew(before, after, "iam_onboard_invitations_total", outcome="created") == 2
    assert grew(before, after, "iam_onboard_invitations_total", outcome="enrolled") == 1
    assert grew(before, after, "iam_onboard_enrollments_total", outcome="started") == 2
    assert grew(before, after, "iam_onboard_enrollments_total", outcome="done") == 1
    assert grew(before, after, "iam_onboard_enrollments_total", outcome="wrong_code") == 5
    assert grew(before, after, "iam_onboard_enrollments_total", outcome="locked") == 1
    assert value(after, "iam_onboard_locked_enrollments") == 1  # bob, waiting for a new link
    assert grew(before, after, "iam_onboard_housekeeping_runs_total", result="ran") == 1
    # IAM calls by action and error code, and their latency by action.
    assert grew(before, after, "iam_onboard_iam_calls_total", action="CreateUser", error_code="")
    assert grew(
        before, after, "iam_onboard_iam_calls_total", action="EnableMFADevice", error_code=""
    )
    for action in ("CreateUser", "CreateVirtualMFADevice", "EnableMFADevice", "AddUserToGroup"):
        count = grew(before, after, "iam_onboard_iam_call_seconds_count", action=action)
        assert count >= 1, action
        in_30s = grew(
            before, after, "iam_onboard_iam_call_seconds_bucket", action=action, le="30.0"
        )
        assert in_30s == count, action
        assert grew(before, after, "iam_onboard_iam_call_seconds_sum", action=action) > 0


def test_an_iam_error_is_counted_with_its_code(metered: Portal):
    with serve_in_thread(metered) as base:
        before = scrape(base)
        assert metered.iam().user_exists("nobody-here") is False  # GetUser: NoSuchEntity
        after = scrape(base)
    calls = "iam_onboard_iam_calls_total"
    assert grew(before, after, calls, action="GetUser", error_code="NoSuchEntity") == 1


def test_throttling_is_counted_per_attempt_and_the_call_by_its_final_error(sqlite_url: str):
    # An account allowed one IAM call at once and none after (the sandbox's clock stands still).
    box = start_sandbox(realism=RealismSettings(rate=1, burst=1, clock=lambda: 500.0))
    try:
        box.reset()
        settings = load_settings(database_url=sqlite_url, aws_max_attempts=2)
        iam, _sts = make_clients(settings, endpoint=box.url)
        before = parsed(metrics.render()[0])
        iam.list_users()
        with pytest.raises(ClientError, match="Throttling"):
            iam.list_users()  # refused twice: the first try and botocore's one retry
        after = parsed(metrics.render()[0])
    finally:
        box.stop()
    assert grew(before, after, "iam_onboard_iam_throttles_total", action="ListUsers") == 2
    calls = "iam_onboard_iam_calls_total"
    assert grew(before, after, calls, action="ListUsers", error_code="") == 1
    assert grew(before, after, calls, action="ListUsers", error_code="Throttling") == 1
    assert grew(before, after, "iam_onboard_iam_call_seconds_count", action="ListUsers") == 2

"""Enrollment under faults, through the pages: the new hire presses what the page offers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.sandbox import Sandbox
from app.services.invitations import invite_user
from app.services.portal import Actor, Portal
from app.store.models import AuditEvent, Enrollment, Invitation
from tests.faultproxy import FaultProxy
from tests.faults.conftest import (
    RETRIED,
    assert_plain,
    groups_of,
    has_login_profile,
    inject,
    matrix,
    mfa_devices_of,
    unassigned_devices,
    users,
)
from tests.helpers import csrf_of

# In the order a clean enrollment makes them (the first test checks this list).
ENROLL_CALLS = [
    "GetCallerIdentity",  # landing: the account the person is invited to
    "ListAccountAliases",
    "CreateVirtualMFADevice",  # exchange
    "EnableMFADevice",  # verify (its success answer is not read back: no ListMFADevices)
    "AddUserToGroup",  # finish: the extra group (no read first: adding a member is a no-op)
    "CreateLoginProfile",
]
# Once MFA is bound, the extra group and the console password go at once, in either order.
AFTER_ENABLE = {"AddUserToGroup", "CreateLoginProfile"}
WRITES = ["CreateVirtualMFADevice", "EnableMFADevice", "AddUserToGroup", "CreateLoginProfile"]
READS = [c for c in ENROLL_CALLS if c not in WRITES]


@dataclass
class NewHire:
    """Walks the pages like a person: presses the button each page offers, reloads on errors."""

    client: TestClient
    link_path: str
    proxy: FaultProxy
    sandbox: Sandbox
    seed: str | None = None
    used_steps: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    password: str | None = None

    def _codes(self) -> tuple[str, str]:
        """Two consecutive codes never typed before (the portal refuses reused steps)."""
        assert self.seed is not None
        for _wait in range(3):
            now = int(self.sandbox.now().timestamp()) // 30
            for t in (now - 1, now, now + 1):
                if not {t, t + 1} & self.used_steps:
                    self.used_steps |= {t, t + 1}
                    totp = pyotp.TOTP(self.seed)
                    return totp.generate_otp(t), totp.generate_otp(t + 1)
            self.sandbox.advance_clock(30)  # the person waits for the next code (and the portal)
        raise AssertionError("no fresh codes")

    def _saw_problem(self, r: httpx.Response) -> None:
        self.problems.append(r.text)
        assert_plain(_visible_error(r.text))
        self.proxy.clear()  # the person waits a minute; the trouble has passed

    def walk(self, max_steps: int = 20) -> None:
        method, url, data = "GET", self.link_path, None
        r = self.client.get(url, follow_redirects=False)
        for _step in range(max_steps):
            if r.status_code == 303:
                method, url, data = "GET", r.headers["location"], None
                r = self.client.get(url, follow_redirects=False)
                continue
            page = r.text
            if r.status_code >= 400 or 'role="alert"' in page:
                self._saw_problem(r)
            if url == "/enroll/done" and r.status_code == 200:
                found = re.search(r'id="temp-password">([^<]+)<', page)
                self.password = found.group(1) if found else None
                return
            if 'id="secret"' in page:
                found = re.search(r'data-copy-value="([A-Z2-7]+)"', page)
                assert found
                self.seed = found.group(1)
                code1, code2 = self._codes()
                method, url = "POST", "/enroll/verify"
                data = {"csrf_token": csrf_of(page), "code1": code1, "code2": code2}
            elif form := re.search(r'<form method="post" action="(/enroll[^"]*)"', page):
                method, url, data = "POST", form.group(1), {"csrf_token": csrf_of(page)}
            # else: nothing to press (an error page, "Reload"): the same request again
            r = self.client.request(method, url, data=data, follow_redirects=False)
        raise AssertionError("the enrollment did not finish:\n" + "\n".join(self.problems))


def _visible_error(page: str) -> str:
    """The sentence the page shows about what went wrong."""
    for pattern in (
        r'role="alert"[^>]*>(.*?)</div>',
        r'class="error-text">(.*?)</p>',
        r"<section class=\"card\">(.*?)</section>",
    ):
        found = re.search(pattern, page, re.DOTALL)
        if found:
            return found.group(1)
    return page


@contextmanager
def invited(portal: Portal, proxy: FaultProxy, sandbox: Sandbox) -> Iterator[NewHire]:
    """Alice, invited with an extra group, about to open her link in a browser."""
    result = invite_user(
        portal,
        user_name="alice",
        email="alice@example.com",
        extra_groups=["Developers"],
        actor=Actor("boss@example.com"),
    )
    proxy.reset()
    with TestClient(create_app(portal), base_url="http://portal.test") as client:
        yield NewHire(client, urlsplit(result.link).path, proxy, sandbox)


@pytest.fixture
def hire(fportal: Portal, proxy: FaultProxy, aws: Sandbox) -> Iterator[NewHire]:
    with invited(fportal, proxy, aws) as person:
        yield person


def assert_enrolled(portal: Portal, iam_client: Any, hire: NewHire) -> None:
    assert users(iam_client) == ["alice"]
    assert groups_of(iam_client, "alice") == {"MFA", "Developers"}
    assert len(mfa_devices_of(iam_client, "alice")) == 1
    assert unassigned_devices(iam_client) == []
    assert has_login_profile(iam_client, "alice")
    assert hire.password, "the done page showed no temporary password"
    with portal.db.session() as s:
        assert [i.status for i in s.scalars(select(Invitation))] == ["used"]
        enrollment = s.scalars(select(Enrollment)).one()
    assert enrollment.status == "done" and enrollment.seed_encrypted is None


def test_the_matrix_covers_every_iam_call_of_an_enrollment(
    calm_portal: Portal, proxy: FaultProxy, iam_client: Any, aws: Sandbox
):
    with invited(calm_portal, proxy, aws) as hire:
        hire.walk()
    assert sorted(proxy.calls) == sorted(ENROLL_CALLS)
    in_order = [c for c in proxy.calls if c not in AFTER_ENABLE]
    assert in_order == [c for c in ENROLL_CALLS if c not in AFTER_ENABLE]
    for write in AFTER_ENABLE:
        assert proxy.calls.index("EnableMFADevice") < proxy.calls.index(write)
    assert hire.problems == []
    assert_enrolled(calm_portal, iam_client, hire)


@pytest.mark.parametrize(("op", "fault", "mode"), matrix(writes=WRITES, reads=READS))
def test_enrollment_under_a_fault_finishes_with_one_bound_device(
    fportal: Portal,
    proxy: FaultProxy,
    hire: NewHire,
    iam_client: Any,
    op: str,
    fault: str,
    mode: str,
):
    inject(proxy, op, fault, mode)
    hire.walk()
    assert (op, fault) in proxy.injected
    if mode == "once" and fault in RETRIED:
        assert hire.problems == [], "a single retried fault reached the new hire"
    assert proxy.count("EnableMFADevice") >= 1
    assert_enrolled(fportal, iam_client, hire)


def test_a_failed_group_beside_a_made_password_is_audited_and_finished_once(
    fportal: Portal, proxy: FaultProxy, hire: NewHire, iam_client: Any
):
    # The extra group and the console password go at once: the group fails (AWS refuses it
    # every time until the person's retry), the password is made all the same.
    proxy.inject("ConcurrentModification", action="AddUserToGroup")
    hire.walk()
    assert len(hire.problems) >= 1
    assert_enrolled(fportal, iam_client, hire)
    with fportal.db.session() as s:
        events = [
            (e.action, e.outcome)
            for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))
            if e.action in ("iam.add_user_to_group", "iam.create_login_profile")
        ]
    # The password once (made at the first try, found at the retry), the group's failure, then
    # the group at the retry.
    assert events.count(("iam.create_login_profile", "ok")) == 1
    assert ("iam.add_user_to_group", "failed") in events
    assert events[-1] == ("iam.add_user_to_group", "ok")
    assert proxy.count("CreateLoginProfile") == 1


def test_a_policy_asking_for_a_longer_password_is_read_only_when_aws_refuses_the_first(
    fportal: Portal, proxy: FaultProxy, hire: NewHire, iam_client: Any
):
    # The first password has 24 characters; this account asks for 40. AWS refuses it, the
    # policy is read (throttled here, until the new hire presses Finish), the longer one made.
    iam_client.update_account_password_policy(MinimumPasswordLength=40, RequireSymbols=True)
    proxy.inject("Throttling", action="GetAccountPasswordPolicy")
    hire.walk()
    assert len(hire.problems) == 1
    assert_enrolled(fportal, iam_client, hire)
    assert hire.password is not None and len(hire.password) >= 40
    # Refused at the first try and at Finish (the stored 24 characters), then the longer one.
    assert proxy.count("CreateLoginProfile") == 3


def test_a_default_policy_means_no_read_of_it(
    calm_portal: Portal, proxy: FaultProxy, iam_client: Any, aws: Sandbox
):
    with invited(calm_portal, proxy, aws) as hire:
        hire.walk()
    assert proxy.count("GetAccountPasswordPolicy") == 0
    assert hire.password is not None and len(hire.password) == 24

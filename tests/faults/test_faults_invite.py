"""Invite under faults: one user, in the MFA group, one usable invitation, whatever IAM did."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.errors import PortalError
from app.main import create_app
from app.services import enrollment
from app.services.api_tokens import create_api_token
from app.services.housekeeping import run_housekeeping
from app.services.invitations import InviteIncomplete, InviteResult, invite_user
from app.services.lifecycle.waiting import resend
from app.services.portal import Actor, Portal
from app.store.models import Invitation
from tests.faultproxy import DROP_AFTER, DROP_BEFORE, SLOW, FaultProxy
from tests.faults.conftest import (
    RETRIED,
    assert_plain,
    group_members,
    groups_of,
    inject,
    matrix,
    unassigned_devices,
    user_tags,
    users,
)
from tests.helpers import Clock

BOSS = Actor("boss@example.com")
INVITE_CALLS = ["CreateUser", "AddUserToGroup"]


def _invite(portal: Portal, name: str = "alice") -> InviteResult:
    return invite_user(
        portal, user_name=name, email=f"{name}@example.com", extra_groups=["Developers"], actor=BOSS
    )


def _invitations(portal: Portal, name: str) -> list[Invitation]:
    with portal.db.session() as s:
        return list(s.scalars(select(Invitation).where(Invitation.user_name_key == name)))


def assert_invited(portal: Portal, iam_client: Any, link: str, name: str = "alice") -> None:
    """One IAM user in the MFA group only, one pending invitation whose link opens."""
    assert users(iam_client) == [name]
    assert groups_of(iam_client, name) == {"MFA"}  # extra groups wait for MFA
    live = [i for i in _invitations(portal, name) if i.status in ("creating", "pending")]
    assert [i.status for i in live] == ["pending"], [i.status for i in live]
    assert user_tags(iam_client, name)["iam-onboard:invitation"] == live[0].id
    token = urlsplit(link).path.rsplit("/", 1)[1]
    assert enrollment.welcome(portal, token=token).user_name == name
    assert unassigned_devices(iam_client) == []


def test_the_matrix_covers_every_iam_call_of_an_invite(calm_portal: Portal, proxy: FaultProxy):
    _invite(calm_portal)
    assert proxy.calls == INVITE_CALLS


@pytest.mark.parametrize(("op", "fault", "mode"), matrix(writes=INVITE_CALLS, reads=[]))
def test_invite_under_a_fault_ends_with_one_user_in_the_mfa_group(
    fportal: Portal, proxy: FaultProxy, iam_client: Any, op: str, fault: str, mode: str
):
    inject(proxy, op, fault, mode)
    try:
        result = _invite(fportal)
        failure = None
    except PortalError as exc:
        failure = exc
    assert (op, fault) in proxy.injected
    if mode == "once" and fault in RETRIED:
        assert failure is None, f"a single {fault} reached the admin: {failure}"
    if failure is not None:
        assert_plain(failure.message)
        proxy.clear()
        result = _invite(fportal)  # the admin presses Invite again
    assert_invited(fportal, iam_client, result.link)


@pytest.mark.parametrize("fault", ["ServiceFailure", DROP_BEFORE, DROP_AFTER, SLOW])
def test_a_failed_rollback_leaves_an_invite_the_next_attempt_finishes(
    fportal: Portal, proxy: FaultProxy, iam_client: Any, fault: str
):
    # AddUserToGroup refused, then the rollback's DeleteUser lost too: the user stays, in
    # no group, and the invitation waits in "creating" for the same invite to finish it.
    proxy.inject("EntityTemporarilyUnmodifiable", action="AddUserToGroup")
    proxy.inject(fault, action="DeleteUser")
    with pytest.raises(InviteIncomplete) as err:
        _invite(fportal)
    assert_plain(err.value.message)
    assert "Run the same invite again" in err.value.message
    if fault in (DROP_BEFORE, "ServiceFailure"):  # otherwise IAM did delete it, unanswered
        assert users(iam_client) == ["alice"]
        assert groups_of(iam_client, "alice") == set()
    proxy.clear()
    result = _invite(fportal)
    assert_invited(fportal, iam_client, result.link)


def test_housekeeping_finishes_an_invite_cut_short_and_resend_gives_a_link(
    fportal: Portal, proxy: FaultProxy, iam_client: Any
):
    clock = Clock()
    fportal.clock = clock
    proxy.inject("ServiceFailure", action="AddUserToGroup")
    proxy.inject("ServiceFailure", action="DeleteUser")
    with pytest.raises(InviteIncomplete):
        _invite(fportal)
    proxy.clear()
    clock.advance(minutes=fportal.settings.stuck_invite_minutes + 1)
    report = run_housekeeping(fportal, holder="test")
    assert report.ran and report.invitations_finished == 1, report.lines()
    assert groups_of(iam_client, "alice") == {"MFA"}
    # No mail is configured, so nobody could have seen a link: resend makes one.
    link = resend(fportal, user_name="alice", actor=BOSS).link
    assert_invited(fportal, iam_client, link)


def test_throttling_on_every_third_call_100_api_invitations_give_100_users_in_mfa(
    calm_portal: Portal, proxy: FaultProxy, iam_client: Any
):
    # Standard retry mode makes 3 attempts; every third call throttled, a retry always works.
    headers = {"Authorization": f"Bearer {create_api_token(calm_portal, name='hr')}"}
    proxy.inject("Throttling", every=3)
    names = [f"hire{i:03d}" for i in range(100)]
    with TestClient(create_app(calm_portal), base_url="http://portal.test") as client:
        for name in names:
            body = {"user_name": name, "email": f"{name}@example.com"}
            r = client.post("/api/v1/invitations", json=body, headers=headers)
            assert r.status_code == 201, r.text
    # Two calls per invite, and each throttled call was retried once, successfully.
    assert len(proxy.injected) == proxy.count() // 3
    assert proxy.count() == 2 * len(names) + len(proxy.injected)
    assert users(iam_client) == names
    assert group_members(iam_client, "MFA") == set(names)
    assert all(groups_of(iam_client, n) == {"MFA"} for n in names)
    with calm_portal.db.session() as s:
        statuses = list(s.scalars(select(Invitation.status)))
    assert statuses == ["pending"] * 100
    assert unassigned_devices(iam_client) == []


def test_an_invite_cut_short_is_not_taken_over_by_housekeeping_too_early(
    fportal: Portal, proxy: FaultProxy, iam_client: Any
):
    # The admin may be pressing Invite again right now: housekeeping waits a few minutes.
    proxy.inject("ServiceFailure", action="AddUserToGroup")
    proxy.inject("ServiceFailure", action="DeleteUser")
    with pytest.raises(InviteIncomplete):
        _invite(fportal)
    proxy.clear()
    clock = Clock()
    fportal.clock = clock
    clock.advance(minutes=fportal.settings.stuck_invite_minutes - 1)
    assert run_housekeeping(fportal, holder="test").invitations_finished == 0
    assert groups_of(iam_client, "alice") == set()

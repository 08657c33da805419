"""Reset (lost phone) and offboarding under faults: running the same action again finishes it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
from sqlalchemy import select

from app.errors import NotFound, PortalError
from app.services import enrollment
from app.services.invitations import invite_user
from app.services.lifecycle.links import LinkResult
from app.services.lifecycle.lost_device import reset_mfa
from app.services.lifecycle.offboarding import offboard
from app.services.portal import Actor, Portal
from app.store.models import Invitation
from tests.faultproxy import FaultProxy
from tests.faults.conftest import (
    RETRIED,
    all_devices,
    assert_plain,
    groups_of,
    has_login_profile,
    inject,
    matrix,
    mfa_devices_of,
    users,
)

BOSS = Actor("boss@example.com")
NEWCOMER = Actor("enrollee", "192.0.2.10")

RESET_CALLS = [
    "GetUser",
    "ListUserTags",  # managed, not protected; the email on record
    "ListMFADevices",
    "DeactivateMFADevice",
    "DeleteVirtualMFADevice",
    "ListVirtualMFADevices",  # devices a cut-short run freed but did not delete
    "DeleteLoginProfile",
    "ListGroupsForUser",
]
RESET_WRITES = ["DeactivateMFADevice", "DeleteVirtualMFADevice", "DeleteLoginProfile"]

OFFBOARD_CALLS = [
    "GetUser",
    "ListUserTags",  # managed, not protected
    "GetCallerIdentity",  # never the portal's own identity
    "GetLoginProfile",  # the dry run: everything attached to the user
    "ListAccessKeys",
    "ListSigningCertificates",
    "ListSSHPublicKeys",
    "ListServiceSpecificCredentials",
    "ListMFADevices",
    "ListUserPolicies",
    "ListAttachedUserPolicies",
    "ListGroupsForUser",
    "DeleteLoginProfile",
    "DeleteAccessKey",
    "DeactivateMFADevice",
    "DeleteVirtualMFADevice",
    "RemoveUserFromGroup",
    "RemoveUserFromGroup",
    "DeleteUser",
    "ListVirtualMFADevices",  # devices a cut-short run freed but did not delete
]
OFFBOARD_WRITES = [
    "DeleteLoginProfile",
    "DeleteAccessKey",
    "DeactivateMFADevice",
    "DeleteVirtualMFADevice",
    "RemoveUserFromGroup",
    "DeleteUser",
]


def enrolled_user(portal: Portal, iam_client: Any, name: str = "alice") -> None:
    """A new hire who went all the way: device bound, console password, extra group, a key."""
    result = invite_user(
        portal, user_name=name, email=f"{name}@example.com", extra_groups=["Developers"], actor=BOSS
    )
    token = urlsplit(result.link).path.rsplit("/", 1)[1]
    enrollment_id = enrollment.start_enrollment(portal, token=token, actor=NEWCOMER)
    enrollment.prepare_device(portal, enrollment_id=enrollment_id, actor=NEWCOMER)
    scan = enrollment.enrollment_view(portal, enrollment_id=enrollment_id).scan
    assert scan is not None
    totp, now = pyotp.TOTP(scan.seed), int(portal.clock().timestamp()) // 30
    enrollment.verify_codes(
        portal,
        enrollment_id=enrollment_id,
        code1=totp.generate_otp(now - 1),
        code2=totp.generate_otp(now),
        actor=NEWCOMER,
    )
    iam_client.create_access_key(UserName=name)


def _unique(calls: list[str]) -> list[str]:
    return list(dict.fromkeys(calls))


# -- reset: the lost phone ----------------------------------------------------------------------
def assert_reset(portal: Portal, iam_client: Any, result: LinkResult) -> None:
    """The user stays, in the MFA group, with no device and no password; a new link works."""
    assert users(iam_client) == ["alice"]
    assert "MFA" in groups_of(iam_client, "alice")
    assert mfa_devices_of(iam_client, "alice") == []
    assert all_devices(iam_client) == []  # no device left unassigned either
    assert not has_login_profile(iam_client, "alice")
    with portal.db.session() as s:
        live = [i for i in s.scalars(select(Invitation)) if i.status in ("creating", "pending")]
    assert [i.id for i in live] == [result.invitation_id]
    token = urlsplit(result.link).path.rsplit("/", 1)[1]
    assert enrollment.welcome(portal, token=token).existing_user


def test_the_matrix_covers_every_iam_call_of_a_reset(
    calm_portal: Portal, proxy: FaultProxy, iam_client: Any
):
    enrolled_user(calm_portal, iam_client)
    proxy.reset()
    result = reset_mfa(calm_portal, user_name="alice", actor=BOSS)
    assert proxy.calls == RESET_CALLS
    assert_reset(calm_portal, iam_client, result)


@pytest.mark.parametrize(
    ("op", "fault", "mode"),
    matrix(writes=RESET_WRITES, reads=[c for c in _unique(RESET_CALLS) if c not in RESET_WRITES]),
)
def test_reset_under_a_fault_is_finished_by_running_it_again(
    fportal: Portal, proxy: FaultProxy, iam_client: Any, op: str, fault: str, mode: str
):
    enrolled_user(fportal, iam_client)
    proxy.reset()
    inject(proxy, op, fault, mode)
    try:
        result = reset_mfa(fportal, user_name="alice", actor=BOSS)
        failure = None
    except PortalError as exc:
        failure = exc
    assert (op, fault) in proxy.injected
    if mode == "once" and fault in RETRIED:
        assert failure is None, f"a single {fault} reached the admin: {failure}"
    if failure is not None:
        assert_plain(failure.message)
        proxy.clear()
        result = reset_mfa(fportal, user_name="alice", actor=BOSS)  # the admin presses again
    assert_reset(fportal, iam_client, result)


# -- offboarding --------------------------------------------------------------------------------
def assert_offboarded(iam_client: Any) -> None:
    assert users(iam_client) == []
    assert all_devices(iam_client) == []


def test_the_matrix_covers_every_iam_call_of_an_offboarding(
    calm_portal: Portal, proxy: FaultProxy, iam_client: Any
):
    enrolled_user(calm_portal, iam_client)
    proxy.reset()
    offboard(calm_portal, user_name="alice", actor=BOSS)
    assert proxy.calls == OFFBOARD_CALLS
    assert_offboarded(iam_client)


@pytest.mark.parametrize(
    ("op", "fault", "mode"),
    matrix(
        writes=OFFBOARD_WRITES,
        reads=[c for c in _unique(OFFBOARD_CALLS) if c not in OFFBOARD_WRITES],
    ),
)
def test_offboarding_under_a_fault_is_finished_by_running_it_again(
    fportal: Portal, proxy: FaultProxy, iam_client: Any, op: str, fault: str, mode: str
):
    enrolled_user(fportal, iam_client)
    proxy.reset()
    inject(proxy, op, fault, mode)
    try:
        offboard(fportal, user_name="alice", actor=BOSS)
        failure = None
    except PortalError as exc:
        failure = exc
    assert (op, fault) in proxy.injected
    if mode == "once" and fault in RETRIED:
        assert failure is None, f"a single {fault} reached the admin: {failure}"
    if failure is not None:
        assert_plain(failure.message)
        proxy.clear()
        try:
            offboard(fportal, user_name="alice", actor=BOSS)  # the admin presses again
        except NotFound as gone:
            # DeleteUser went through and only its answer was lost: nothing is left to do.
            assert_plain(gone.message)
            assert op in ("DeleteUser", "ListVirtualMFADevices")
    assert_offboarded(iam_client)

"""Resend, revoke, lost phone, existing users and offboarding, on the sandbox over HTTP."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from sqlalchemy import select

from app.aws.errors import DeleteConflict
from app.errors import Conflict, NotFound, PortalError
from app.services.directory import export_rows, refresh_directory
from app.services.enrollment import EnrollmentLocked, LinkUnusable, start_enrollment, verify_codes
from app.services.housekeeping import run_housekeeping
from app.services.invitations import invite_user
from app.services.lifecycle.adoption import invite_existing_user
from app.services.lifecycle.lost_device import reset_mfa
from app.services.lifecycle.offboarding import describe_resources, offboard, offboard_plan
from app.services.lifecycle.waiting import resend, revoke
from app.services.portal import Actor, Portal
from app.store.models import AuditEvent, Invitation, utcnow
from tests.helpers import Clock, Demo, start_demo
from tests.integration.lifecycle_support import (
    NEW_HIRE,
    build_busy_user,
    enroll,
    has_login_profile,
    start,
    token_of,
    unassigned_serials,
)

ADMIN = Actor("admin@example.com", "203.0.113.5")


def _status(portal: Portal, name: str) -> str:
    refresh_directory(portal)
    return {r.user_name: r.status for r in export_rows(portal)}[name]


def _actions(portal: Portal, user: str) -> list[str]:
    with portal.db.session() as s:
        rows = s.scalars(
            select(AuditEvent).where(AuditEvent.target_user == user).order_by(AuditEvent.id)
        )
        return [e.action for e in rows]


def _count_delete_conflicts(portal: Portal) -> list[str]:
    """Every IAM answer with the error code DeleteConflict, as botocore parsed it."""
    seen: list[str] = []

    def after_call(parsed, model, **_kwargs):  # type: ignore[no-untyped-def]
        if parsed.get("Error", {}).get("Code") == "DeleteConflict":
            seen.append(model.name)

    portal.iam_clients[0].meta.events.register("after-call.iam", after_call)
    return seen


# -- resend -------------------------------------------------------------------------------------
def test_resend_gives_a_new_link_and_the_old_one_stops_at_once(portal: Portal):
    first = invite_user(portal, user_name="alice", email="alice@example.com", actor=ADMIN)
    again = resend(portal, user_name="ALICE", actor=ADMIN)
    assert again.link != first.link
    assert again.user_name == "alice"
    with pytest.raises(LinkUnusable):
        start_enrollment(portal, token=token_of(first.link), actor=NEW_HIRE)
    start(portal, again.link)  # the new link reaches the QR step
    assert "resend" in _actions(portal, "alice")


def test_a_locked_enrollment_is_unlocked_only_by_a_resend(portal: Portal):
    result = invite_user(portal, user_name="bob", email="bob@example.com", actor=ADMIN)
    enrollment_id, _seed = start(portal, result.link)
    errors = []
    for _ in range(5):
        with pytest.raises(PortalError) as wrong:
            verify_codes(
                portal, enrollment_id=enrollment_id, code1="000000", code2="000001",
                actor=NEW_HIRE,
            )  # fmt: skip
        errors.append(wrong.value)
    assert isinstance(errors[-1], EnrollmentLocked)
    with pytest.raises(EnrollmentLocked):
        start_enrollment(portal, token=token_of(result.link), actor=NEW_HIRE)
    fresh = resend(portal, user_name="bob", actor=ADMIN)
    enroll(portal, fresh.link)
    assert len(portal.iam().mfa_devices("bob")) == 1


def test_resend_refuses_an_enrolled_user_and_an_unknown_one(portal: Portal):
    result = invite_user(portal, user_name="carol", email="carol@example.com", actor=ADMIN)
    enroll(portal, result.link)
    with pytest.raises(Conflict, match="reset-mfa"):
        resend(portal, user_name="carol", actor=ADMIN)
    with pytest.raises(NotFound):
        resend(portal, user_name="nobody", actor=ADMIN)


def test_an_expired_link_shows_invite_expired_and_a_resend_makes_a_new_link_work(
    portal: Portal,
):
    clock = Clock()
    portal.clock = clock
    result = invite_user(portal, user_name="dave", email="dave@example.com", actor=ADMIN)
    clock.advance(hours=73)
    run_housekeeping(portal, holder="test")
    assert _status(portal, "dave") == "invite expired"
    with pytest.raises(LinkUnusable):
        start_enrollment(portal, token=token_of(result.link), actor=NEW_HIRE)
    fresh = resend(portal, user_name="dave", actor=ADMIN)
    assert fresh.expires_at > clock.now + timedelta(hours=71)
    assert _status(portal, "dave") == "invited"
    portal.clock = utcnow  # back to real time: the sandbox checks codes against it
    enroll(portal, fresh.link)
    assert _status(portal, "dave") == "enrolled"


# -- revoke -------------------------------------------------------------------------------------
def test_revoke_kills_the_link_and_keeps_the_user(portal: Portal, iam_client):
    result = invite_user(portal, user_name="erin", email="erin@example.com", actor=ADMIN)
    revoked = revoke(portal, user_name="erin", actor=ADMIN)
    assert revoked.user_deleted is False
    with pytest.raises(LinkUnusable):
        start_enrollment(portal, token=token_of(result.link), actor=NEW_HIRE)
    assert iam_client.get_user(UserName="erin")["User"]["UserName"] == "erin"
    assert _status(portal, "erin") == "revoked"


def test_revoke_with_delete_removes_a_never_enrolled_user(portal: Portal, iam_client):
    conflicts = _count_delete_conflicts(portal)
    result = invite_user(portal, user_name="frank", email="frank@example.com", actor=ADMIN)
    start(portal, result.link)  # got as far as the QR code, then stopped
    revoked = revoke(portal, user_name="frank", delete_user=True, actor=ADMIN)
    assert revoked.user_deleted is True
    assert [u["UserName"] for u in iam_client.list_users()["Users"]] == []
    assert unassigned_serials(iam_client) == []
    assert conflicts == []


def test_revoke_will_not_delete_an_enrolled_or_pre_existing_user(portal: Portal, iam_client):
    result = invite_user(portal, user_name="gina", email="gina@example.com", actor=ADMIN)
    enroll(portal, result.link)
    with pytest.raises(Conflict, match="offboard"):
        revoke(portal, user_name="gina", delete_user=True, actor=ADMIN)
    iam_client.create_user(UserName="hank")
    invite_existing_user(portal, user_name="hank", email="hank@example.com", actor=ADMIN)
    with pytest.raises(Conflict, match="existed before"):
        revoke(portal, user_name="hank", delete_user=True, actor=ADMIN)
    names = sorted(u["UserName"] for u in iam_client.list_users()["Users"])
    assert names == ["gina", "hank"]
    with portal.db.session() as s:
        hank = s.scalars(select(Invitation).where(Invitation.user_name == "hank")).one()
    assert hank.status == "pending"  # a refused revoke changes nothing


# -- lost phone ---------------------------------------------------------------------------------
def test_reset_mfa_removes_device_and_password_and_the_new_link_gets_a_new_seed(
    portal: Portal, iam_client
):
    first = invite_user(portal, user_name="ivy", email="ivy@example.com", actor=ADMIN)
    seed1 = enroll(portal, first.link)
    assert has_login_profile(iam_client, "ivy")
    assert len(iam_client.list_mfa_devices(UserName="ivy")["MFADevices"]) == 1

    fresh = reset_mfa(portal, user_name="ivy", actor=ADMIN)

    assert iam_client.list_mfa_devices(UserName="ivy")["MFADevices"] == []
    assert not has_login_profile(iam_client, "ivy")
    assert unassigned_serials(iam_client) == []
    groups = iam_client.list_groups_for_user(UserName="ivy")["Groups"]
    assert "MFA" in [g["GroupName"] for g in groups]
    with pytest.raises(LinkUnusable):
        start_enrollment(portal, token=token_of(first.link), actor=NEW_HIRE)
    seed2 = enroll(portal, fresh.link)
    assert seed2 != seed1
    assert len(iam_client.list_mfa_devices(UserName="ivy")["MFADevices"]) == 1
    assert has_login_profile(iam_client, "ivy")  # a new temporary password came with it
    with pytest.raises(LinkUnusable):
        start_enrollment(portal, token=token_of(fresh.link), actor=NEW_HIRE)
    actions = _actions(portal, "ivy")
    for action in (
        "iam.deactivate_mfa_device",
        "iam.delete_virtual_mfa_device",
        "iam.delete_login_profile",
        "reset_mfa",
    ):
        assert action in actions


def test_reset_mfa_of_an_unknown_user_says_so(portal: Portal):
    with pytest.raises(NotFound, match="no IAM user named ghost"):
        reset_mfa(portal, user_name="ghost", actor=ADMIN)


# -- existing IAM users -------------------------------------------------------------------------
def test_an_outside_user_shows_no_mfa_and_a_sent_link_enrolls_it_without_a_second_user(
    portal: Portal, iam_client
):
    iam_client.create_user(UserName="judy")
    iam_client.create_login_profile(UserName="judy", Password="Her-own-Passw0rd!")
    assert _status(portal, "judy") == "no MFA"

    result = invite_existing_user(portal, user_name="judy", email="judy@example.com", actor=ADMIN)
    groups = [g["GroupName"] for g in iam_client.list_groups_for_user(UserName="judy")["Groups"]]
    assert groups == ["MFA"]  # enforce now: no deadline given
    enroll(portal, result.link)

    users = [u["UserName"] for u in iam_client.list_users()["Users"]]
    assert [u for u in users if u.lower() == "judy"] == ["judy"]
    assert len(iam_client.list_mfa_devices(UserName="judy")["MFADevices"]) == 1
    assert has_login_profile(iam_client, "judy")
    assert "iam.create_login_profile" not in _actions(portal, "judy")  # she keeps her password
    assert "iam.create_user" not in _actions(portal, "judy")
    assert _status(portal, "judy") == "enrolled"


def test_send_link_warns_about_access_keys_in_use(portal: Portal, iam_client, aws):
    iam_client.create_user(UserName="ken")
    key = iam_client.create_access_key(UserName="ken")["AccessKey"]
    iam_client.create_access_key(UserName="ken")  # never used: no warning for it
    boto3.client(
        "iam",
        endpoint_url=aws.url,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    ).list_groups()  # a program using the key
    deadline = portal.clock() + timedelta(days=14)
    result = invite_existing_user(
        portal, user_name="ken", email="ken@example.com", deadline=deadline, actor=ADMIN
    )
    assert [k.access_key_id for k in result.keys_in_use] == [key["AccessKeyId"]]
    assert any(key["AccessKeyId"] in w and "MFA" in w for w in result.warnings)
    assert result.enforce_at == deadline
    assert result.expires_at >= deadline  # the link lasts through the grace period


def test_send_link_refuses_unknown_users_and_users_with_a_live_invitation(portal: Portal):
    with pytest.raises(NotFound):
        invite_existing_user(portal, user_name="nobody", email="n@example.com", actor=ADMIN)
    invite_user(portal, user_name="liam", email="liam@example.com", actor=ADMIN)
    with pytest.raises(Conflict, match="resend"):
        invite_existing_user(portal, user_name="liam", email="liam@example.com", actor=ADMIN)


# -- offboarding --------------------------------------------------------------------------------
def test_offboard_frees_a_device_the_portal_did_not_make_and_leaves_it_for_the_admin(
    portal: Portal, iam_client
):
    made = build_busy_user(iam_client, "otto", device_path="/")
    lines = "\n".join(describe_resources(offboard_plan(portal, user_name="otto")))
    assert "not created by the portal" in lines and made["device"] in lines
    offboard(portal, user_name="otto", actor=ADMIN)
    with pytest.raises(iam_client.exceptions.NoSuchEntityException):
        iam_client.get_user(UserName="otto")
    assert unassigned_serials(iam_client) == [made["device"]]  # freed, not deleted


def test_offboard_lists_everything_then_removes_it_all_without_a_delete_conflict(
    portal: Portal, iam_client
):
    made = build_busy_user(iam_client, "mallory")
    conflicts = _count_delete_conflicts(portal)
    with pytest.raises(DeleteConflict):  # the counter sees one when it happens
        portal.iam().delete_user("mallory")
    assert conflicts == ["DeleteUser"]
    conflicts.clear()

    plan = offboard_plan(portal, user_name="mallory")
    assert plan.login_profile
    assert sorted(plan.access_keys) == sorted(made["keys"])
    assert plan.signing_certificates == [made["cert"]]
    assert plan.ssh_public_keys == [made["ssh"]]
    assert [d.serial for d in plan.mfa_devices] == [made["device"]]
    assert plan.inline_policies == ["scratch-bucket"]
    assert plan.attached_policies == [made["policy"]]
    assert sorted(plan.groups) == ["Developers", "ReadOnly"]
    lines = "\n".join(describe_resources(plan))
    for item in [*made["keys"], made["cert"], made["ssh"], made["device"], made["policy"]]:
        assert item in lines
    assert "login profile" in lines and "scratch-bucket" in lines and "ReadOnly" in lines

    report = offboard(portal, user_name="mallory", actor=ADMIN)

    assert conflicts == []
    with pytest.raises(iam_client.exceptions.NoSuchEntityException):
        iam_client.get_user(UserName="mallory")
    assert unassigned_serials(iam_client) == []  # the device went with the user
    assert len(report.removed) == 11  # 1 + 2 keys + 1 + 1 + 1 + 1 + 1 + 2 groups + the user
    with portal.db.session() as s:
        events = list(
            s.scalars(
                select(AuditEvent).where(
                    AuditEvent.target_user == "mallory", AuditEvent.action.like("iam.%")
                )
            )
        )
    assert len(events) == 12  # the device is deactivated, then deleted
    assert all(e.outcome == "ok" and e.aws_request_id and e.actor == ADMIN.name for e in events)
    assert all(e.source_ip == ADMIN.source_ip for e in events)


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_kwargs):  # type: ignore[no-untyped-def]
        yield self._body


def _fail_once(portal: Portal, operation: str) -> None:
    """AWS answers `operation` once with AccessDenied (not retried), then normally."""
    pending = [True]

    def before_send(request, **_kwargs):  # type: ignore[no-untyped-def]
        body = request.body or ""
        body = body.decode() if isinstance(body, bytes) else body
        if pending and f"Action={operation}" in body:
            pending.clear()
            body = (
                b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                b"<Message>injected</Message></Error><RequestId>req-injected</RequestId>"
                b"</ErrorResponse>"
            )
            return AWSResponse("https://iam.amazonaws.com/", 403, {}, _Raw(body))
        return None

    portal.iam_clients[0].meta.events.register("before-send.iam", before_send)


def test_offboard_stopped_midway_says_what_is_left_and_a_second_run_finishes(
    portal: Portal, iam_client
):
    made = build_busy_user(iam_client, "nina")
    _fail_once(portal, "DeleteSSHPublicKey")
    with pytest.raises(PortalError) as stopped:
        offboard(portal, user_name="nina", actor=ADMIN)
    message = stopped.value.message
    assert made["ssh"] in message and "Run offboard again" in message
    assert made["keys"][0] not in message.split("Still there:")[1]  # already gone
    assert iam_client.get_user(UserName="nina")

    offboard(portal, user_name="nina", actor=ADMIN)
    with pytest.raises(iam_client.exceptions.NoSuchEntityException):
        iam_client.get_user(UserName="nina")
    with portal.db.session() as s:
        failed = s.scalars(
            select(AuditEvent).where(
                AuditEvent.outcome == "failed", AuditEvent.action == "offboard"
            )
        ).one()
    assert failed.aws_request_id == "req-injected"


def test_offboard_revokes_a_live_invitation(portal: Portal):
    result = invite_user(portal, user_name="oscar", email="oscar@example.com", actor=ADMIN)
    offboard(portal, user_name="oscar", actor=ADMIN)
    with pytest.raises(LinkUnusable):
        start_enrollment(portal, token=token_of(result.link), actor=NEW_HIRE)


# -- the same from the command line ---------------------------------------------------------------
@pytest.fixture
def demo(tmp_path: Path):
    d = start_demo(tmp_path)
    yield d
    d.stop()


def _demo_iam(demo: Demo):  # type: ignore[no-untyped-def]
    return boto3.client(
        "iam",
        endpoint_url=demo.iam_url,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )


def test_offboard_and_reset_mfa_from_the_cli(demo: Demo):
    iam = _demo_iam(demo)
    for group in ("Developers", "ReadOnly"):
        iam.create_group(GroupName=group)
    made = build_busy_user(iam, "peggy")

    dry = demo.cli("offboard", "peggy", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    for item in [*made["keys"], made["cert"], made["ssh"], made["device"], made["policy"]]:
        assert item in dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout
    assert iam.get_user(UserName="peggy")

    reset = demo.cli("reset-mfa", "peggy")  # no terminal and no --yes
    assert reset.returncode == 1
    assert reset.stderr.strip().count("\n") == 0 and "--yes" in reset.stderr
    assert len(iam.list_mfa_devices(UserName="peggy")["MFADevices"]) == 1

    reset = demo.cli("reset-mfa", "peggy", "--yes", "--email", "peggy@example.com")
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip().splitlines()[-1].startswith(demo.portal_url + "/enroll/")
    assert iam.list_mfa_devices(UserName="peggy")["MFADevices"] == []

    refused = demo.cli("offboard", "peggy")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    gone = demo.cli("offboard", "peggy", "--yes")
    assert gone.returncode == 0, gone.stderr
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName="peggy")

    missing = demo.cli("offboard", "peggy", "--dry-run")
    assert missing.returncode == 1 and "no IAM user named peggy" in missing.stderr


def test_resend_revoke_send_link_and_housekeeping_from_the_cli(demo: Demo):
    iam = _demo_iam(demo)
    invited = demo.cli("invite", "quinn", "--email", "quinn@example.com")
    assert invited.returncode == 0, invited.stderr
    again = demo.cli("resend", "quinn")
    assert again.returncode == 0, again.stderr
    new_link = again.stdout.strip().splitlines()[-1]
    assert new_link.startswith(demo.portal_url + "/enroll/")
    assert new_link != invited.stdout.strip().splitlines()[-1]

    revoked = demo.cli("revoke", "quinn", "--delete-user")
    assert revoked.returncode == 0, revoked.stderr
    assert "deleted" in revoked.stdout
    assert iam.list_users()["Users"] == []

    iam.create_user(UserName="rita")
    sent = demo.cli("send-link", "rita", "--email", "rita@example.com", "--deadline", "2999-01-01")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip().splitlines()[-1].startswith(demo.portal_url + "/enroll/")
    assert iam.list_groups_for_user(UserName="rita")["Groups"] == []  # grace period

    bad = demo.cli("send-link", "rita", "--email", "rita@example.com", "--deadline", "soon")
    assert bad.returncode == 1 and "YYYY-MM-DD" in bad.stderr

    chores = demo.cli("housekeeping")
    assert chores.returncode == 0, chores.stderr
    assert "deadline(s) enforced" in chores.stdout

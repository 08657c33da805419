"""Housekeeping on the sandbox: abandoned devices, expiry, reminders, crash recovery, deadlines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from botocore.awsrequest import AWSResponse
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.aws.iam import EMAIL_TAG, INVITATION_TAG, MANAGED_TAG
from app.main import create_app
from app.services import leases
from app.services.bootstrap import bootstrap
from app.services.enrollment import LinkUnusable, welcome
from app.services.housekeeping import run_housekeeping
from app.services.invitations import invite_user
from app.services.lifecycle.adoption import invite_existing_user
from app.services.lifecycle.waiting import resend
from app.services.outbox import Mail, list_outbox
from app.services.portal import CLI_ACTOR, Actor, Portal
from app.store.models import AuditEvent, Enrollment, Invitation, utcnow
from tests.conftest import make_portal
from tests.helpers import Clock
from tests.integration.lifecycle_support import enroll, start, token_of, unassigned_serials

ADMIN = Actor("admin@example.com", "203.0.113.5")


@pytest.fixture
def mail_portal(aws, sqlite_url) -> Iterator[Portal]:  # type: ignore[no-untyped-def]
    """A portal whose mail reaches someone (the sandbox outbox)."""
    p = make_portal(aws, sqlite_url)
    p.settings = p.settings.model_copy(update={"sandbox": True})
    bootstrap(p, dry_run=False, actor=CLI_ACTOR)
    yield p
    p.db.dispose()


def _groups(iam_client, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [g["GroupName"] for g in iam_client.list_groups_for_user(UserName=name)["Groups"]]


def _outbox(portal: Portal) -> list[Mail]:
    """The outbox as the sandbox's outbox page shows it: bodies decrypted, oldest first."""
    return list(reversed(list_outbox(portal)))


def _link_in(mail: Mail) -> str:
    return next(w for w in mail.text_body.split() if "/enroll/" in w)


# -- abandoned devices --------------------------------------------------------------------------
def test_an_enrollment_abandoned_at_the_qr_step_leaves_no_device_and_enrolling_again_works(
    portal: Portal, iam_client
):
    result = invite_user(portal, user_name="sam", email="sam@example.com", actor=ADMIN)
    start(portal, result.link)  # the QR code was shown; the person walked away
    assert len(unassigned_serials(iam_client)) == 1

    portal.clock = Clock(utcnow() + timedelta(hours=2))
    run_housekeeping(portal, holder="test")
    assert unassigned_serials(iam_client) == []

    portal.clock = utcnow
    enroll(portal, result.link)  # the same link, later: a new device, no EntityAlreadyExists
    assert len(iam_client.list_mfa_devices(UserName="sam")["MFADevices"]) == 1
    with portal.db.session() as s:
        failures = list(s.scalars(select(AuditEvent).where(AuditEvent.outcome == "failed")))
    assert failures == []


def test_old_devices_named_after_invitees_go_while_young_and_foreign_ones_stay(
    portal: Portal, iam_client
):
    invite_user(portal, user_name="uma", email="uma@example.com", actor=ADMIN)
    left = iam_client.create_virtual_mfa_device(VirtualMFADeviceName="uma")["VirtualMFADevice"]
    tina = invite_user(portal, user_name="tina", email="tina@example.com", actor=ADMIN)
    start(portal, tina.link)  # tina is scanning right now
    foreign = iam_client.create_virtual_mfa_device(VirtualMFADeviceName="kiosk")
    foreign_serial = foreign["VirtualMFADevice"]["SerialNumber"]

    report = run_housekeeping(portal, holder="test")

    remaining = unassigned_serials(iam_client)
    assert left["SerialNumber"] not in remaining
    assert foreign_serial in remaining
    assert any(s.endswith(":mfa/iam-onboard/tina") for s in remaining)
    assert report.devices_deleted == 1

    portal.clock = Clock(utcnow() + timedelta(hours=2))
    run_housekeeping(portal, holder="test")
    assert unassigned_serials(iam_client) == [foreign_serial]  # never the portal's to delete


# -- expiry, reminders ----------------------------------------------------------------------------
def test_one_reminder_carries_a_new_link_and_the_old_one_stops(mail_portal: Portal):
    portal = mail_portal
    clock = Clock()
    portal.clock = clock
    result = invite_user(portal, user_name="vic", email="vic@example.com", actor=ADMIN)
    clock.advance(hours=23)
    assert run_housekeeping(portal, holder="test").reminders_sent == 0
    clock.advance(hours=2)

    report = run_housekeeping(portal, holder="test")

    assert report.reminders_sent == 1
    [mail] = [m for m in _outbox(portal) if m.to == "vic@example.com"]
    assert "no longer works" in mail.text_body
    new_link = _link_in(mail)
    assert new_link != result.link
    with pytest.raises(LinkUnusable):
        welcome(portal, token=token_of(result.link))
    assert welcome(portal, token=token_of(new_link)).user_name == "vic"
    clock.advance(hours=24)
    assert run_housekeeping(portal, holder="test").reminders_sent == 0
    assert len([m for m in _outbox(portal) if m.to == "vic@example.com"]) == 1


def test_without_mail_no_reminder_is_sent_and_the_admins_link_keeps_working(portal: Portal):
    clock = Clock()
    portal.clock = clock
    result = invite_user(portal, user_name="wes", email="wes@example.com", actor=ADMIN)
    clock.advance(hours=30)
    assert run_housekeeping(portal, holder="test").reminders_sent == 0
    assert welcome(portal, token=token_of(result.link)).user_name == "wes"


# -- crash recovery -------------------------------------------------------------------------------
def _crashed_after_create_user(portal: Portal, name: str, minutes_ago: float) -> str:
    """An invite whose process died right after CreateUser: the row says `creating`."""
    created = utcnow() - timedelta(minutes=minutes_ago)
    with portal.db.session() as s:
        inv = Invitation(
            user_name=name, user_name_key=name, email=f"{name}@example.com",
            invited_by=ADMIN.name, created_at=created, expires_at=created + timedelta(hours=72),
        )  # fmt: skip
        s.add(inv)
        s.flush()
        inv_id = inv.id
    tags = {MANAGED_TAG: "true", INVITATION_TAG: inv_id, EMAIL_TAG: f"{name}@example.com"}
    portal.iam().create_user(name, tags=tags)
    return inv_id


def test_an_interrupted_invite_is_finished_without_a_link_when_no_mail_can_carry_it(
    portal: Portal, iam_client
):
    stuck = _crashed_after_create_user(portal, "yara", minutes_ago=10)
    fresh = _crashed_after_create_user(portal, "zack", minutes_ago=1)  # may still be running

    report = run_housekeeping(portal, holder="test")

    assert report.invitations_finished == 1
    assert _groups(iam_client, "yara") == ["MFA"]
    assert _groups(iam_client, "zack") == []
    with portal.db.session() as s:
        assert s.get(Invitation, stuck).status == "pending"  # type: ignore[union-attr]
        assert s.get(Invitation, stuck).token_hash is None  # type: ignore[union-attr]
        assert s.get(Invitation, fresh).status == "creating"  # type: ignore[union-attr]
    link = resend(portal, user_name="yara", actor=ADMIN).link
    assert welcome(portal, token=token_of(link)).user_name == "yara"


def test_an_interrupted_invite_is_finished_and_its_link_mailed(mail_portal: Portal, iam_client):
    _crashed_after_create_user(mail_portal, "abby", minutes_ago=10)
    run_housekeeping(mail_portal, holder="test")
    assert _groups(iam_client, "abby") == ["MFA"]
    [mail] = _outbox(mail_portal)
    assert mail.to == "abby@example.com"
    assert welcome(mail_portal, token=token_of(_link_in(mail))).user_name == "abby"


# -- deadlines ----------------------------------------------------------------------------------
def test_with_a_deadline_the_user_joins_the_mfa_group_at_enrollment_or_when_it_passes(
    portal: Portal, iam_client
):
    for name in ("walt", "xena"):
        iam_client.create_user(UserName=name)
    deadline = utcnow() + timedelta(days=7)
    links = {
        name: invite_existing_user(
            portal, user_name=name, email=f"{name}@example.com", deadline=deadline, actor=ADMIN
        ).link
        for name in ("walt", "xena")
    }
    assert _groups(iam_client, "walt") == _groups(iam_client, "xena") == []  # still working

    enroll(portal, links["xena"])
    assert _groups(iam_client, "xena") == ["MFA"]  # enrolled first
    run_housekeeping(portal, holder="test")
    assert _groups(iam_client, "walt") == []  # the deadline has not passed

    portal.clock = Clock(deadline + timedelta(minutes=1))
    report = run_housekeeping(portal, holder="test")
    assert report.deadlines_enforced == 1
    assert _groups(iam_client, "walt") == ["MFA"]
    assert run_housekeeping(portal, holder="test").deadlines_enforced == 0


# -- one replica at a time; one chore failing ---------------------------------------------------
def test_only_one_holder_runs_at_a_time(portal: Portal):
    assert leases.acquire(portal, name="housekeeping", holder="other", ttl=timedelta(minutes=5))
    report = run_housekeeping(portal, holder="me")
    assert report.ran is False
    assert "Another replica" in report.lines()[0]
    leases.release(portal, name="housekeeping", holder="other")
    assert run_housekeeping(portal, holder="me").ran is True
    assert run_housekeeping(portal, holder="other").ran is True  # "me" let go when done


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_kwargs):  # type: ignore[no-untyped-def]
        yield self._body


def test_a_failing_chore_is_reported_and_the_others_still_run(portal: Portal):
    def deny(request, **_kwargs):  # type: ignore[no-untyped-def]
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        if "Action=ListVirtualMFADevices" in body:
            error = (
                b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                b"<Message>no</Message></Error><RequestId>r1</RequestId></ErrorResponse>"
            )
            return AWSResponse("https://iam.amazonaws.com/", 403, {}, _Raw(error))
        return None

    portal.iam_clients[0].meta.events.register("before-send.iam", deny)
    clock = Clock()
    portal.clock = clock
    invite_user(portal, user_name="bea", email="bea@example.com", actor=ADMIN)
    clock.advance(hours=80)

    report = run_housekeeping(portal, holder="test")

    assert report.expired == 1
    assert len(report.problems) == 1 and "ListVirtualMFADevices" in report.problems[0]


# -- in the server --------------------------------------------------------------------------------
def test_the_server_runs_housekeeping_in_the_background_and_stops_it(aws, sqlite_url):  # type: ignore[no-untyped-def]
    portal = make_portal(aws, sqlite_url, housekeeping_interval_seconds=0.1)
    past = utcnow() - timedelta(hours=1)
    with portal.db.session() as s:
        s.add(
            Invitation(
                id="a" * 32, user_name="cody", user_name_key="cody", email="cody@example.com",
                invited_by="cli", status="pending", created_at=past - timedelta(days=3),
                expires_at=past,
            )
        )  # fmt: skip

    def status() -> str:
        with portal.db.session() as s:
            return s.get(Invitation, "a" * 32).status  # type: ignore[union-attr]

    with TestClient(create_app(portal)):
        deadline = time.monotonic() + 10
        while status() != "expired" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status() == "expired"
    assert not [t for t in threading.enumerate() if t.name == "housekeeping"]
    with portal.db.session() as s:
        assert s.scalars(select(Enrollment)).all() == []
    portal.db.dispose()

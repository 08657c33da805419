"""Housekeeping: the periodic chores, run by one replica at a time (a database lease).

Expire links and enrollments, delete abandoned MFA devices, finish invitations a crash cut
short, send one reminder per waiting invitation, enforce passed deadlines, retry unsent mail;
then drop what is no longer needed at rest: temporary passwords nobody can reveal any more,
expired sessions, mail bodies whose link was delivered or expired, old sign-in failures.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import exists, select, update

from app import metrics
from app.aws.errors import AwsError
from app.errors import PortalError
from app.i18n import _
from app.security.tokens import hash_token, new_token
from app.services import audit, leases, webhooks
from app.services.admins import lockout as admin_lockout
from app.services.enrollment import expire_enrollments
from app.services.invitations import LIVE_STATES, finish_invitation
from app.services.lifecycle.adoption import finish_existing
from app.services.lifecycle.links import mail_enabled, mail_link
from app.services.lifecycle.steps import delete_unassigned_device, iam_step
from app.services.outbox import drop_spent_bodies, retry_unsent
from app.services.portal import SYSTEM_ACTOR, Portal
from app.services.sessions import purge_expired_sessions
from app.store.models import Enrollment, Invitation, WebSession
from app.store.states import LIVE_ENROLLMENT, EnrollmentState, InvitationState, WebhookEvent

log = logging.getLogger("iam_onboard.housekeeping")

LEASE = "housekeeping"
LEASE_TTL = timedelta(minutes=10)  # longer than one run; a crashed holder frees it by then
DEVICE_MIN_AGE = timedelta(hours=1)
FIRST_RUN_DELAY_SECONDS = 30.0


@dataclass
class HousekeepingReport:
    ran: bool = True
    expired: int = 0
    devices_deleted: int = 0
    invitations_finished: int = 0
    reminders_sent: int = 0
    deadlines_enforced: int = 0
    mails_sent: int = 0
    passwords_deleted: int = 0
    sessions_purged: int = 0
    mail_bodies_dropped: int = 0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        if not self.ran:
            return [_("Another replica is running housekeeping right now; nothing was done.")]
        return [
            _("{n} link(s) or enrollment(s) expired").format(n=self.expired),
            _("{n} abandoned MFA device(s) deleted").format(n=self.devices_deleted),
            _("{n} interrupted invitation(s) finished").format(n=self.invitations_finished),
            _("{n} reminder(s) mailed").format(n=self.reminders_sent),
            _("{n} deadline(s) enforced (user added to the MFA group)").format(
                n=self.deadlines_enforced
            ),
            _("{n} queued mail(s) sent").format(n=self.mails_sent),
            _("{n} unrevealed temporary password(s) deleted").format(n=self.passwords_deleted),
            _("{n} expired session(s) purged").format(n=self.sessions_purged),
            _("{n} mail text(s) dropped (delivered or link expired)").format(
                n=self.mail_bodies_dropped
            ),
            *(_("problem: {problem}").format(problem=p) for p in self.problems),
        ]


def run_housekeeping(portal: Portal, *, holder: str) -> HousekeepingReport:
    """Run every chore once unless another replica holds the lease; a failing chore skips alone."""
    if not leases.acquire(portal, name=LEASE, holder=holder, ttl=LEASE_TTL):
        metrics.housekeeping_run("skipped")
        return HousekeepingReport(ran=False)
    report = HousekeepingReport()
    try:
        for chore in (
            _expire,
            _delete_abandoned_devices,
            _finish_stuck_invitations,
            _send_reminders,
            _enforce_deadlines,
            _retry_mail,
            _forget_spent_secrets,
        ):
            try:
                chore(portal, report)
            except PortalError as exc:
                report.problems.append(f"{chore.__name__.strip('_')}: {exc.message}")
                log.warning("housekeeping %s failed: %s", chore.__name__, exc.message)
            except Exception as exc:  # a bug in one chore must not stop the others
                report.problems.append(f"{chore.__name__.strip('_')}: {type(exc).__name__}")
                log.exception("housekeeping %s failed", chore.__name__)
    finally:
        leases.release(portal, name=LEASE, holder=holder)
    metrics.housekeeping_run("problems" if report.problems else "ran")
    return report


# -- the chores -----------------------------------------------------------------------------------
def _expire(portal: Portal, report: HousekeepingReport) -> None:
    report.expired += expire_enrollments(portal)


def _delete_abandoned_devices(portal: Portal, report: HousekeepingReport) -> None:
    """Unassigned virtual devices the portal made: from enrollments, or named after an invitee."""
    iam = portal.iam()
    unassigned = iam.virtual_mfa_devices("Unassigned")
    if not unassigned:
        return
    now = portal.clock()
    # Never younger than an enrollment may live: the person may be scanning it right now.
    cutoff = now - max(DEVICE_MIN_AGE, timedelta(minutes=portal.settings.enrollment_ttl_minutes))
    with portal.db.session() as s:
        enrollments = list(
            s.scalars(select(Enrollment).where(Enrollment.device_serial.is_not(None)))
        )
        recent_users = set(
            s.scalars(select(Enrollment.user_name).where(Enrollment.created_at > cutoff))
        )
        invitees = set(
            s.scalars(
                select(Invitation.user_name_key).where(
                    Invitation.status.in_((*LIVE_STATES, InvitationState.EXPIRED))
                )
            )
        )
    old = {
        e.device_serial
        for e in enrollments
        if e.device_created_at and e.device_created_at <= cutoff
    }
    young = {e.device_serial for e in enrollments} - old
    busy = {name.lower() for name in recent_users}
    for device in unassigned:
        name = device.serial.rsplit("/", 1)[-1]
        if device.serial in young:
            continue
        named_after_invitee = name.lower() in invitees and name.lower() not in busy
        if device.serial in old or named_after_invitee:
            if delete_unassigned_device(
                portal, iam=iam, serial=device.serial, user_name=name, actor=SYSTEM_ACTOR
            ):
                report.devices_deleted += 1


def _finish_stuck_invitations(portal: Portal, report: HousekeepingReport) -> None:
    """Crash recovery: an invite cut short after CreateUser is taken through the MFA group."""
    cutoff = portal.clock() - timedelta(minutes=portal.settings.stuck_invite_minutes)
    with portal.db.session() as s:
        stuck = list(
            s.scalars(
                select(Invitation)
                .where(Invitation.status == InvitationState.CREATING)
                .where(Invitation.created_at <= cutoff)
            )
        )
    for inv in stuck:
        try:
            if inv.existing_user:
                token = finish_existing(portal, invitation_id=inv.id, actor=SYSTEM_ACTOR)
            else:
                result = finish_invitation(portal, invitation_id=inv.id, actor=SYSTEM_ACTOR)
                token = result.link.rsplit("/", 1)[1]
        except PortalError as exc:
            text = _("invitation of {name}: {problem}")
            report.problems.append(text.format(name=inv.user_name, problem=exc.message))
            continue
        report.invitations_finished += 1
        with portal.db.session() as s:
            row = s.get(Invitation, inv.id)
            assert row is not None
            if not mail_enabled(portal):
                # Nobody saw this link and no mail can carry it: no link exists until a resend.
                row.token_hash = None
        if mail_enabled(portal):
            mail_link(portal, inv=row, link=portal.link(f"/enroll/{token}"), reason="invite")
        audit.record(
            portal,
            actor=SYSTEM_ACTOR,
            action="invite.recovered",
            target_user=inv.user_name,
            detail="link mailed" if mail_enabled(portal) else "no link yet: resend to get one",
        )


def _send_reminders(portal: Portal, report: HousekeepingReport) -> None:
    """One reminder per waiting invitation; it carries a new link (only hashes are stored)."""
    if not mail_enabled(portal):
        return  # rotating the token without a mail to carry it would only kill the admin's link
    now = portal.clock()
    due = now - timedelta(hours=portal.settings.reminder_after_hours)
    with portal.db.session() as s:
        enrolling = select(Enrollment.invitation_id).where(
            Enrollment.status.in_(LIVE_ENROLLMENT),
            Enrollment.expires_at > now,
        )
        rows = list(
            s.scalars(
                select(Invitation).where(
                    Invitation.status == InvitationState.PENDING,
                    Invitation.reminder_sent_at.is_(None),
                    Invitation.locked_at.is_(None),
                    Invitation.created_at <= due,
                    Invitation.expires_at > now,
                    Invitation.id.not_in(enrolling),
                )
            )
        )
    for inv in rows:
        token = new_token()
        with portal.db.session() as s:
            row = s.get(Invitation, inv.id)
            if (
                row is None
                or row.status != InvitationState.PENDING
                or row.reminder_sent_at is not None
            ):
                continue
            row.token_hash = hash_token(token)
            row.reminder_sent_at = now
        mail_link(portal, inv=row, link=portal.link(f"/enroll/{token}"), reason="reminder")
        audit.record(
            portal,
            actor=SYSTEM_ACTOR,
            action="invite.reminder",
            target_user=inv.user_name,
            detail=f"new link mailed to {inv.email}; the previous link no longer works",
        )
        report.reminders_sent += 1


def _enforce_deadlines(portal: Portal, report: HousekeepingReport) -> None:
    """A grace period that ran out: the user joins the MFA group, enrolled or not."""
    now = portal.clock()
    with portal.db.session() as s:
        rows = list(
            s.scalars(
                select(Invitation).where(
                    Invitation.enforce_at.is_not(None),
                    Invitation.enforce_at <= now,
                    Invitation.status.in_((InvitationState.PENDING, InvitationState.EXPIRED)),
                )
            )
        )
    if not rows:
        return
    iam = portal.iam()
    group = portal.settings.mfa_group
    # One paginated GetGroup instead of a call per user; members stay selected until enrolled.
    members = {m.lower() for m in iam.group_members(group)}
    for inv in rows:
        if inv.user_name.lower() in members:
            continue
        try:
            added = iam_step(
                portal,
                actor=SYSTEM_ACTOR,
                iam=iam,
                action="iam.add_user_to_group",
                user=inv.user_name,
                detail=f"{group}: the deadline {inv.enforce_at:%Y-%m-%d %H:%M} UTC passed",
                call=partial(iam.add_user_to_group, inv.user_name, group),
            )
        except AwsError as exc:
            text = _("deadline of {name}: {problem}")
            report.problems.append(text.format(name=inv.user_name, problem=exc.message))
            continue
        if added:
            members.add(inv.user_name.lower())
            report.deadlines_enforced += 1
            webhooks.notify(
                portal, WebhookEvent.DEADLINE, key=inv.id, user=inv.user_name,
                text=f"The MFA deadline of {inv.user_name} passed: added to the group "
                f"{group}, so AWS now asks for MFA.",
            )  # fmt: skip
        else:
            text = _("deadline of {name}: the IAM user no longer exists")
            report.problems.append(text.format(name=inv.user_name))


def _retry_mail(portal: Portal, report: HousekeepingReport) -> None:
    report.mails_sent += retry_unsent(portal)
    webhooks.retry_unsent(portal)  # notifications wait in their own outbox


def _forget_spent_secrets(portal: Portal, report: HousekeepingReport) -> None:
    # Sessions first: one that timed out no longer keeps a done page (and its password) open.
    report.sessions_purged += purge_expired_sessions(portal)
    report.passwords_deleted += delete_unrevealable_passwords(portal)
    report.mail_bodies_dropped += drop_spent_bodies(portal)
    admin_lockout.purge_forgotten(portal)


def delete_unrevealable_passwords(portal: Portal) -> int:
    """Temporary passwords of enrollments that ended: nobody can open their done page again.

    An enrollment that expired or was locked; or one that finished but whose done page was
    never shown and no live session leads to it any more. (AWS keeps the login profile: an
    admin's resend or reset gives the person a new way in.)
    """
    now = portal.clock()
    live_session = exists().where(
        (WebSession.enrollment_id == Enrollment.id) & (WebSession.expires_at > now)
    )
    with portal.db.session() as s:
        result = s.execute(
            update(Enrollment)
            .where(Enrollment.temp_password_encrypted.is_not(None))
            .where(
                Enrollment.status.in_((EnrollmentState.EXPIRED, EnrollmentState.LOCKED))
                | ((Enrollment.status == EnrollmentState.DONE) & ~live_session)
            )
            .values(temp_password_encrypted=None)
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)


# -- running it in the server ---------------------------------------------------------------------
def new_holder() -> str:
    """A name for this process in the lease table."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def start_background(portal: Portal, interval_seconds: float = 300) -> Callable[[], None]:
    """Run housekeeping every `interval_seconds` in a daemon thread; returns its stopper."""
    holder = new_holder()
    stop = threading.Event()

    def loop() -> None:
        delay = min(interval_seconds, FIRST_RUN_DELAY_SECONDS)
        while not stop.wait(delay):
            delay = interval_seconds
            try:
                report = run_housekeeping(portal, holder=holder)
            except Exception:  # the database may be down for a moment; try again next time
                log.exception("housekeeping run failed")
                continue
            for problem in report.problems:
                log.warning("housekeeping: %s", problem)

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()

    def stopper() -> None:
        stop.set()
        thread.join(timeout=30)

    return stopper


def lifespan(portal: Portal) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A FastAPI lifespan running housekeeping while the server runs (0 seconds disables it)."""

    @asynccontextmanager
    async def run(_app: Any) -> AsyncIterator[None]:
        interval = portal.settings.housekeeping_interval_seconds
        stopper = start_background(portal, interval_seconds=interval) if interval > 0 else None
        try:
            yield
        finally:
            if stopper:
                stopper()

    return run

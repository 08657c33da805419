"""Enrollment links: issuing one (a new token kills the old one at once), mailing it, and
revoking the live ones (their running enrollments end with them).

Shared by the lifecycle actions and housekeeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from app import metrics
from app.i18n import _
from app.security.tokens import hash_token, new_token
from app.services.invitations import LIVE_STATES
from app.services.lifecycle.steps import delete_unassigned_device
from app.services.outbox import enqueue_mail
from app.services.own_writes import device_reader
from app.services.portal import Actor, Portal
from app.store.models import Enrollment, Invitation, WebSession
from app.store.states import EnrollmentState, InvitationState

# Enrollment states with no device bound, in which a device may wait unassigned.
OPEN_ENROLLMENT = (EnrollmentState.STARTED, EnrollmentState.DEVICE_CREATED, EnrollmentState.LOCKED)


@dataclass(frozen=True)
class KeyInUse:
    access_key_id: str
    last_used: datetime


@dataclass(frozen=True)
class LinkResult:
    """A fresh enrollment link, shown once to the admin (and mailed when mail is on)."""

    invitation_id: str
    user_name: str
    email: str
    link: str
    expires_at: datetime
    mailed: bool = False
    enforce_at: datetime | None = None
    keys_in_use: tuple[KeyInUse, ...] = ()
    warnings: tuple[str, ...] = ()
    was_locked: bool = False  # a resend of a link locked by too many wrong codes


def mail_enabled(portal: Portal) -> bool:
    """Mail reaches someone: over SMTP, or on the sandbox's outbox page."""
    return bool(portal.settings.smtp_url) or portal.settings.sandbox


def latest_invitation(portal: Portal, user_name: str) -> Invitation | None:
    """The newest invitation of this user name (IAM names ignore case) that ever stood for the
    user: a refused or failed one (a name already taken, an IAM error) never did, so it never
    decides what resend or reset do, nor where their links go."""
    with portal.db.session() as s:
        rows = list(
            s.scalars(
                select(Invitation)
                .where(Invitation.user_name_key == user_name.lower())
                .where(Invitation.status != InvitationState.FAILED)
            )
        )
    # A live invitation wins a tie: two can be made within one tick of a coarse clock.
    rows.sort(key=lambda r: (r.created_at, r.status in LIVE_STATES), reverse=True)
    return rows[0] if rows else None


def abandon_enrollments(portal: Portal, *, invitation_ids: list[str], actor: Actor) -> int:
    """End running enrollments: seed wiped, sessions ended, their unbound device deleted."""
    if not invitation_ids:
        return 0
    with portal.db.session() as s:
        rows = list(
            s.scalars(
                select(Enrollment)
                .where(Enrollment.invitation_id.in_(invitation_ids))
                .where(Enrollment.status.in_(OPEN_ENROLLMENT))
            )
        )
        for row in rows:
            row.status = EnrollmentState.EXPIRED
            row.seed_encrypted = None
            row.version += 1  # a request of the old session holding the row now loses its race
        if rows:
            ended = [r.id for r in rows]
            s.execute(delete(WebSession).where(WebSession.enrollment_id.in_(ended)))
    devices = [(r.user_name, r.device_serial, r.device_created_at) for r in rows if r.device_serial]
    if devices:
        iam = portal.iam()
        for user, serial, made_at in devices:
            # A device made a moment ago may not be seen yet: wait, or it would stay behind.
            on = device_reader(portal, iam, user_name=user, serial=serial, made_at=made_at)
            delete_unassigned_device(portal, iam=on, serial=serial, user_name=user, actor=actor)
    return len(rows)


def revoke_live(portal: Portal, *, user_name: str, actor: Actor, why: str) -> list[Invitation]:
    """Kill every live or expired link of this user; returns those invitations."""
    with portal.db.session() as s:
        rows = list(
            s.scalars(
                select(Invitation)
                .where(Invitation.user_name_key == user_name.lower())
                .where(Invitation.status.in_((*LIVE_STATES, InvitationState.EXPIRED)))
            )
        )
        for row in rows:
            row.status = InvitationState.REVOKED
            row.revoked_at = portal.clock()
            row.token_hash = None
            row.last_error = why
    metrics.invitation("revoked", len(rows))
    abandon_enrollments(portal, invitation_ids=[r.id for r in rows], actor=actor)
    return rows


def issue_link(portal: Portal, invitation_id: str, *, expires_at: datetime | None = None) -> str:
    """A new token for the invitation, which becomes pending and unlocked; the old link dies."""
    token = new_token()
    with portal.db.session() as s:
        row = s.get(Invitation, invitation_id)
        assert row is not None
        row.token_hash = hash_token(token)
        default = portal.clock() + timedelta(hours=portal.settings.invite_ttl_hours)
        row.expires_at = expires_at or default
        row.status = InvitationState.PENDING
        row.failed_attempts = 0
        row.locked_at = None
        row.last_error = None
    metrics.invitation("link_issued")
    return token


def link_expiry(portal: Portal, enforce_at: datetime | None) -> datetime:
    """The usual link lifetime, stretched to last through a grace period."""
    expires_at = portal.clock() + timedelta(hours=portal.settings.invite_ttl_hours)
    return max(expires_at, enforce_at) if enforce_at else expires_at


def mail_link(portal: Portal, *, inv: Invitation, link: str, reason: str) -> bool:
    """Mail the enrollment link to the invitee when mail reaches anyone; True when queued."""
    if not mail_enabled(portal):
        return False
    intro = {
        "resend": _("Here is a new link to set up MFA for your AWS sign-in."),
        "reset": _("Your MFA device was reset. Set up a new one with this link."),
        "existing": _("Your AWS sign-in now needs MFA. Set it up with this link."),
        "reminder": _("A reminder: your AWS sign-in is waiting for you to set up MFA."),
        "invite": _("You have been invited to set up an AWS sign-in with MFA."),
    }[reason]
    lines = [
        intro,
        "",
        _("IAM user name: {name}").format(name=inv.user_name),
        link,
        "",
        _("The link works once and expires {when} UTC.").format(
            when=f"{inv.expires_at:%Y-%m-%d %H:%M}"
        ),
    ]
    if reason in ("reminder", "resend"):
        lines.append(_("Any link sent to you before this one no longer works."))
    if inv.enforce_at is not None:
        deadline = _("From {when} UTC your AWS access needs MFA, set up or not.")
        lines.append(deadline.format(when=f"{inv.enforce_at:%Y-%m-%d %H:%M}"))
    subject = _("Set up MFA for your AWS sign-in ({name})").format(name=inv.user_name)
    enqueue_mail(
        portal, to=inv.email, subject=subject, text="\n".join(lines), expires_at=inv.expires_at
    )
    return True


def link_result(portal: Portal, invitation_id: str, token: str, *, reason: str) -> LinkResult:
    """The admin's copy of a fresh link, mailed to the invitee first when mail is on."""
    with portal.db.session() as s:
        inv = s.get(Invitation, invitation_id)
        assert inv is not None
    link = portal.link(f"/enroll/{token}")
    return LinkResult(
        invitation_id=inv.id,
        user_name=inv.user_name,
        email=inv.email,
        link=link,
        expires_at=inv.expires_at,
        mailed=mail_link(portal, inv=inv, link=link, reason=reason),
        enforce_at=inv.enforce_at,
    )


def new_existing_invitation(
    portal: Portal,
    *,
    name: str,
    email: str,
    extra_groups: list[str],
    replace_login_profile: bool,
    enforce_at: datetime | None,
    actor: Actor,
) -> str:
    """A new invitation for a user that already exists in IAM; returns its id."""
    now = portal.clock()
    with portal.db.session() as s:
        inv = Invitation(
            user_name=name,
            user_name_key=name.lower(),
            email=email,
            extra_groups=extra_groups,
            invited_by=actor.name,
            existing_user=True,
            replace_login_profile=replace_login_profile,
            enforce_at=enforce_at,
            created_at=now,
            expires_at=link_expiry(portal, enforce_at),
        )
        s.add(inv)
        s.flush()
        return inv.id

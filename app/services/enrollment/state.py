"""The enrollment row and its invitation: loading, conditional status changes, waiting.

The wizard's state is one Enrollment row per invitation (same id, so a double-clicked start
cannot make two). Every change is conditional on the version read (`set_status`), so of two
concurrent requests exactly one goes on.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.security.secretbox import SecretBox, SecretBoxError
from app.security.tokens import hash_token
from app.services import audit
from app.services.enrollment.errors import EnrollmentLocked, LinkUnusable
from app.services.portal import Actor, Portal
from app.store.db import changed_rows
from app.store.models import Enrollment, Invitation
from app.store.states import EnrollmentState, InvitationState

log = logging.getLogger("iam_onboard.enrollment")


# A device being created (EnrollmentState.STARTED) by another request for longer than this was
# abandoned by a crashed request and may be taken over.
_CREATION_STALE = timedelta(seconds=60)
# How long a double-submitted form waits for the request that got there first.
_WAIT_FOR_OTHER_SECONDS = 20.0


def seed_box(portal: Portal) -> SecretBox:
    return portal.secret_box("mfa-seed")


def password_box(portal: Portal) -> SecretBox:
    return portal.secret_box("temp-password")


def secret_binding(enrollment_id: str) -> str:
    return f"enrollment:{enrollment_id}"


def enrollee(actor: Actor, user_name: str) -> Actor:
    return Actor(f"enrollee:{user_name}", actor.source_ip)


def record(
    portal: Portal,
    actor: Actor,
    action: str,
    user: str,
    *,
    outcome: str = "ok",
    request_id: str | None = None,
    detail: str | None = None,
    session: Session | None = None,
) -> None:
    audit.record(
        portal, actor=actor, action=action, target_user=user, outcome=outcome,
        aws_request_id=request_id, detail=detail, session=session,
    )  # fmt: skip


def invitation_for_token(portal: Portal, token: str, session: Session | None = None) -> Invitation:
    """The pending, unexpired invitation of a token; every other case is LinkUnusable."""
    if not token or len(token) > 200:
        raise LinkUnusable("unknown")
    if session is None:
        with portal.db.session() as own:
            return invitation_for_token(portal, token, own)
    inv = session.scalars(
        select(Invitation).where(Invitation.token_hash == hash_token(token))
    ).first()
    if inv is None:
        raise LinkUnusable("unknown")
    if inv.status == InvitationState.USED:
        # Finished, unless a newer invitation (a reset, a resend) took its place since.
        newer = session.scalar(
            select(Invitation.id)
            .where(Invitation.user_name == inv.user_name, Invitation.created_at > inv.created_at)
            .limit(1)
        )
        raise LinkUnusable("gone" if newer else "used")
    if inv.status != InvitationState.PENDING or inv.expires_at <= portal.clock():
        raise LinkUnusable()
    if inv.locked_at is not None:
        raise EnrollmentLocked()
    return inv


def load(portal: Portal, enrollment_id: str) -> tuple[Enrollment, Invitation]:
    with portal.db.session() as session:
        return load_on(session, enrollment_id)


def load_on(session: Session, enrollment_id: str) -> tuple[Enrollment, Invitation]:
    enr = session.get(Enrollment, enrollment_id)
    inv = session.get(Invitation, enr.invitation_id) if enr is not None else None
    if enr is None or inv is None:
        raise LinkUnusable()
    return enr, inv


def require_open(inv: Invitation) -> None:
    if inv.locked_at is not None:
        raise EnrollmentLocked()
    if inv.status == InvitationState.USED:
        raise LinkUnusable("used")
    if inv.status != InvitationState.PENDING:
        raise LinkUnusable()


def enrollment_ttl(portal: Portal) -> timedelta:
    return timedelta(minutes=portal.settings.enrollment_ttl_minutes)


def needs_device(enr: Enrollment, now: datetime) -> bool:
    if enr.status in (EnrollmentState.ENABLING, EnrollmentState.ENABLED, EnrollmentState.DONE):
        return False
    if enr.status == EnrollmentState.DEVICE_CREATED:
        return enr.seed_encrypted is None or enr.expires_at <= now
    if enr.status == EnrollmentState.STARTED and enr.device_created_at is not None:
        # another request is creating the device right now, unless it died doing so
        return now - enr.device_created_at >= _CREATION_STALE
    return True  # started (fresh), expired, locked (a resend unlocked the invitation)


def wait_while(portal: Portal, enrollment_id: str, *statuses: str) -> Enrollment:
    """Wait (bounded) while another request holds the enrollment in one of `statuses`."""
    deadline = time.monotonic() + _WAIT_FOR_OTHER_SECONDS
    while True:
        with portal.db.session() as s:
            enr = s.get(Enrollment, enrollment_id)
        assert enr is not None
        if enr.status not in statuses or time.monotonic() >= deadline:
            return enr
        time.sleep(0.2)


def set_status(
    portal: Portal,
    enrollment_id: str,
    version: int,
    *,
    session: Session | None = None,
    **values: Any,
) -> bool:
    """Update the enrollment only if nobody changed it since `version` was read."""
    if session is None:
        with portal.db.session() as own:
            return set_status(portal, enrollment_id, version, session=own, **values)
    statement = (
        update(Enrollment)
        .where(Enrollment.id == enrollment_id, Enrollment.version == version)
        .values(version=version + 1, **values)
    )
    return changed_rows(session, statement) == 1


def read_seed(portal: Portal, enr: Enrollment) -> str | None:
    if enr.seed_encrypted is None:
        return None
    try:
        return seed_box(portal).decrypt(enr.seed_encrypted, bound_to=secret_binding(enr.id))
    except SecretBoxError:
        log.warning("the seed of enrollment %s cannot be decrypted (secret key changed?)", enr.id)
        return None

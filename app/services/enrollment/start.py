"""The link: the landing page's facts, and the exchange of the link for an enrollment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from app import metrics
from app.errors import PortalError
from app.services import audit
from app.services.enrollment.account import account_info
from app.services.enrollment.state import enrollee, enrollment_ttl, invitation_for_token, record
from app.services.portal import Actor, Portal
from app.store.models import Enrollment
from app.store.states import EnrollmentState


@dataclass(frozen=True)
class Welcome:
    user_name: str
    invited_by: str | None  # an email address, or None for the CLI or the API
    account_label: str
    expires_at: datetime
    note: str | None
    existing_user: bool


def welcome(portal: Portal, *, token: str) -> Welcome:
    """What the landing page shows; reads only (mail scanners open links too)."""
    inv = invitation_for_token(portal, token)
    return Welcome(
        user_name=inv.user_name,
        invited_by=inv.invited_by if "@" in inv.invited_by else None,
        account_label=account_info(portal).label,
        expires_at=inv.expires_at,
        note=inv.note,
        existing_user=inv.existing_user,
    )


def start_enrollment(portal: Portal, *, token: str, actor: Actor) -> str:
    """Exchange the link for the invitation's enrollment (new or resumed); returns its id.

    The link keeps working until the enrollment completes: a person who lost the session
    cookie opens it again. Call prepare_device next.
    """
    now = portal.clock()
    refused: PortalError | None = None
    started = False
    try:
        with portal.db.session() as session:  # the lookup and the new row: one transaction
            try:
                inv = invitation_for_token(portal, token, session)
            except PortalError as exc:
                # Recorded in this transaction, raised once it has committed.
                audit.record(
                    portal, actor=actor, action="enroll.start", outcome="failed",
                    detail=exc.code, session=session,
                )  # fmt: skip
                refused = exc
            else:
                # One row per invitation: its id is the invitation's, so two starts cannot race.
                if session.get(Enrollment, inv.id) is None:
                    session.add(
                        Enrollment(
                            id=inv.id, invitation_id=inv.id, user_name=inv.user_name,
                            status=EnrollmentState.STARTED, created_at=now,
                            expires_at=now + enrollment_ttl(portal), used_steps=[], version=0,
                        )
                    )  # fmt: skip
                    session.flush()  # a second click's row raises IntegrityError here
                    started = True
                record(
                    portal, enrollee(actor, inv.user_name), "enroll.start", inv.user_name,
                    session=session,
                )  # fmt: skip
    except IntegrityError:
        # the other click made it
        started = False
        record(portal, enrollee(actor, inv.user_name), "enroll.start", inv.user_name)
    if started:
        metrics.enrollment("started")
    if refused is not None:
        raise refused
    return inv.id

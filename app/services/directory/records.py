"""What the directory reads from the database: the stored snapshot and the portal's records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.services.portal import Portal
from app.services.statuses import MEANINGFUL_INVITATION, EnrollmentFacts, InvitationFacts
from app.store.models import DirectorySnapshot, Enrollment, Invitation


@dataclass(frozen=True)
class Snapshot:
    """When IAM was last read; `refreshed_at` is None until the first refresh."""

    refreshed_at: datetime | None = None
    report_generated_at: datetime | None = None
    report_error: str | None = None
    user_count: int = 0
    iam_calls: int = 0


def aware(value: Any) -> datetime | None:
    """A time from IAM with its zone (UTC when it came without one); None for anything else."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def portal_records(
    session: Session,
) -> tuple[dict[str, InvitationFacts], dict[str, EnrollmentFacts]]:
    """The latest meaningful invitation per user name key, and the latest enrollment of each."""
    inv_rows = session.execute(
        select(
            Invitation.id,
            Invitation.user_name,
            Invitation.user_name_key,
            Invitation.email,
            Invitation.status,
            Invitation.invited_by,
            Invitation.created_at,
            Invitation.expires_at,
            Invitation.used_at,
            Invitation.locked_at,
        )
        .where(Invitation.status.in_(MEANINGFUL_INVITATION))
        .order_by(Invitation.created_at, Invitation.id)
    ).all()
    enr_rows = session.execute(
        select(
            Enrollment.invitation_id,
            Enrollment.status,
            Enrollment.expires_at,
            Enrollment.enabled_at,
        ).order_by(Enrollment.created_at, Enrollment.id)
    ).all()
    invitations = {
        r.user_name_key: InvitationFacts(
            r.id,
            r.user_name,
            r.email,
            r.status,
            r.invited_by,
            r.created_at,
            r.expires_at,
            r.used_at,
            r.locked_at,
        )
        for r in inv_rows
    }  # later rows overwrite earlier ones: the latest invitation wins
    enrollments = {
        r.invitation_id: EnrollmentFacts(r.status, r.expires_at, r.enabled_at) for r in enr_rows
    }
    return invitations, enrollments


def stored_snapshot(session: Session) -> Snapshot:
    row = session.get(DirectorySnapshot, 1)
    if row is None:
        return Snapshot()
    return Snapshot(
        row.refreshed_at, row.report_generated_at, row.report_error, row.user_count, row.iam_calls
    )


def get_snapshot(portal: Portal) -> Snapshot:
    """When IAM was last read, and how it went."""
    with portal.db.session() as session:
        return stored_snapshot(session)

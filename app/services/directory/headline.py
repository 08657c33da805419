"""The dashboard's headline: console users with and without MFA, invitations waiting or
expired, and MFA coverage over time (one point per refresh, from directory_history).

Counted in SQL over the stored snapshot, so a page view costs the same at 50 users as at
5,000; enrollments finished in the portal since the last refresh are counted at once, like the
dashboard's rows (docs/architecture.md, "Statuses").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.services.directory.records import portal_records, stored_snapshot
from app.services.portal import Portal
from app.services.statuses import (
    ENROLLING,
    INVITE_EXPIRED,
    INVITED,
    compute_status,
)
from app.store.models import DirectoryHistory, DirectoryUser, Invitation
from app.store.states import InvitationState

# The chart's window, and the most points it draws (one per day beyond that).
SERIES_DAYS = 90
MAX_POINTS = 120


@dataclass(frozen=True)
class Headline:
    refreshed: bool  # False before the first refresh: the console counts are unknown
    report_missing: bool  # no credential report: console passwords are unknown too
    console_with_mfa: int
    console_without_mfa: int
    invitations_pending: int  # sent, not used yet (or being used now)
    invitations_expired: int

    @property
    def console_users(self) -> int:
        return self.console_with_mfa + self.console_without_mfa

    @property
    def coverage(self) -> float | None:
        """Console users with MFA, 0..1; None when there are none (or none are known)."""
        total = self.console_users
        return self.console_with_mfa / total if total and self.known else None

    @property
    def known(self) -> bool:
        return self.refreshed and not self.report_missing


@dataclass(frozen=True)
class CoveragePoint:
    at: datetime
    console_users: int
    console_with_mfa: int

    @property
    def coverage(self) -> float | None:
        return self.console_with_mfa / self.console_users if self.console_users else None


def _console_counts(session: Session, refreshed_at: datetime | None) -> tuple[int, int]:
    """(with MFA, without MFA) among console users: the snapshot, then the portal's news."""
    rows = session.execute(
        select(DirectoryUser.mfa_active, func.count())
        .where(DirectoryUser.has_password.is_(True))
        .group_by(DirectoryUser.mfa_active)
    ).all()
    counts = {bool(mfa): int(n) for mfa, n in rows}
    with_mfa, without = counts.get(True, 0), counts.get(False, 0)
    if refreshed_at is None:
        return with_mfa, without
    # Finished through the portal since the refresh: a bound device and a console password
    # now, whatever the snapshot says (the same rule as the dashboard's rows).
    enrolled_since = (
        select(Invitation.user_name)
        .where(Invitation.status == InvitationState.USED)
        .where(Invitation.used_at > refreshed_at)
    )
    names = {name.lower() for name in session.scalars(enrolled_since)}
    if not names:
        return with_mfa, without
    seen = session.execute(
        select(DirectoryUser.user_name, DirectoryUser.has_password, DirectoryUser.mfa_active).where(
            func.lower(DirectoryUser.user_name).in_(names)
        )
    ).all()
    before = {r.user_name.lower(): (r.has_password, r.mfa_active) for r in seen}
    for name in names:
        had_password, had_mfa = before.get(name, (False, False))
        if had_password and had_mfa:
            continue
        with_mfa += 1
        if had_password:
            without -= 1
    return with_mfa, without


def _invitation_counts(session: Session, now: datetime) -> tuple[int, int]:
    """(pending, expired): users whose latest invitation is waiting, or expired unused."""
    invitations, enrollments = portal_records(session)
    waiting = [
        inv
        for inv in invitations.values()
        if inv.status in (InvitationState.PENDING, InvitationState.EXPIRED)
    ]
    pending = expired = 0
    for inv in waiting:
        status = compute_status(
            invitation=inv,
            enrollment=enrollments.get(inv.id),
            has_mfa=False,
            in_mfa_group=True,
            now=now,
        )
        if status in (INVITED, ENROLLING):
            pending += 1
        elif status == INVITE_EXPIRED:
            expired += 1
    return pending, expired


def headline(portal: Portal) -> Headline:
    """The numbers an admin and an auditor read first."""
    now = portal.clock()
    with portal.db.session() as session:
        snapshot = stored_snapshot(session)
        with_mfa, without = _console_counts(session, snapshot.refreshed_at)
        pending, expired = _invitation_counts(session, now)
    return Headline(
        refreshed=snapshot.refreshed_at is not None,
        report_missing=snapshot.refreshed_at is not None and snapshot.report_generated_at is None,
        console_with_mfa=with_mfa,
        console_without_mfa=without,
        invitations_pending=pending,
        invitations_expired=expired,
    )


def coverage_series(portal: Portal, *, days: int = SERIES_DAYS) -> list[CoveragePoint]:
    """Console users with MFA at each refresh of the last `days` days, oldest first.

    Refreshes without a credential report are left out (their console counts are unknown);
    with more than MAX_POINTS refreshes, each day keeps its last one.
    """
    since = portal.clock() - timedelta(days=days)
    with portal.db.session() as session:
        rows = session.execute(
            select(
                DirectoryHistory.refreshed_at,
                DirectoryHistory.console_users,
                DirectoryHistory.console_with_mfa,
            )
            .where(DirectoryHistory.refreshed_at >= since)
            .where(DirectoryHistory.report_missing.is_(False))
            .order_by(DirectoryHistory.refreshed_at, DirectoryHistory.id)
        ).all()
    points = [CoveragePoint(r[0], r[1], r[2]) for r in rows]
    if len(points) > MAX_POINTS:
        by_day = {p.at.date(): p for p in points}  # the day's last refresh wins
        points = list(by_day.values())[-MAX_POINTS:]
    return points

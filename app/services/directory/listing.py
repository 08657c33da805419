"""The directory as the dashboard and the API list it: statuses, filters, pages."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.services.directory.records import Snapshot, portal_records, stored_snapshot
from app.services.portal import Portal
from app.services.statuses import ORDER, STATUSES, compute_status, parse_status
from app.store.models import DirectoryUser
from app.store.states import InvitationState

MAX_PER_PAGE = 1000


@dataclass(slots=True)  # not frozen: 5,000 of these per page view, and frozen ones are slow
class DirectoryRow:
    user_name: str
    status: str
    email: str | None
    invited_by: str | None
    invited_at: datetime | None
    invite_expires_at: datetime | None
    enrolled_at: datetime | None
    mfa_devices: int  # virtual devices seen in IAM (or bound through the portal since)
    other_mfa: bool  # the credential report says MFA is on, but no virtual device is listed
    last_console_sign_in: datetime | None
    in_mfa_group: bool
    has_password: bool
    in_snapshot: bool  # False: invited after the last refresh, known from the portal only


@dataclass(frozen=True)
class DirectoryPage:
    rows: list[DirectoryRow]
    page: int
    per_page: int
    total: int  # rows matching the search and the status filter
    pages: int
    counts: dict[str, int]  # every status, across the whole directory
    all_users: int
    snapshot: Snapshot


def _all_rows(portal: Portal) -> tuple[list[DirectoryRow], Snapshot]:
    now = portal.clock()
    with portal.db.session() as session:
        snapshot = stored_snapshot(session)
        invitations, enrollments = portal_records(session)
        users = session.execute(
            select(
                DirectoryUser.user_name,
                DirectoryUser.password_last_used,
                DirectoryUser.has_password,
                DirectoryUser.in_mfa_group,
                # The count is all a row needs; decoding 5,000 JSON lists per view is not free.
                func.json_array_length(DirectoryUser.virtual_mfa_serials).label("virtual"),
                DirectoryUser.mfa_active,
            )
        ).all()
    rows: list[DirectoryRow] = []
    seen: set[str] = set()
    for u in users:
        key = u.user_name.lower()
        seen.add(key)
        inv = invitations.get(key)
        enr = enrollments.get(inv.id) if inv else None
        virtual = int(u.virtual or 0)
        if virtual == 0 and enr is not None and enr.enabled_at is not None:
            bound_later = snapshot.refreshed_at is None or enr.enabled_at > snapshot.refreshed_at
            virtual = 1 if bound_later else 0  # enrolled since the refresh
        rows.append(
            DirectoryRow(
                user_name=u.user_name,
                status=compute_status(
                    invitation=inv,
                    enrollment=enr,
                    has_mfa=u.mfa_active,
                    in_mfa_group=u.in_mfa_group,
                    now=now,
                ),
                email=inv.email if inv else None,
                invited_by=inv.invited_by if inv else None,
                invited_at=inv.created_at if inv else None,
                invite_expires_at=inv.expires_at if inv else None,
                enrolled_at=inv.used_at if inv else None,
                mfa_devices=virtual,
                other_mfa=u.mfa_active and not u.virtual,
                last_console_sign_in=u.password_last_used,
                in_mfa_group=u.in_mfa_group,
                has_password=u.has_password,
                in_snapshot=True,
            )
        )
    # Invited after the last refresh: the IAM user exists (the invite created it inside the
    # MFA group) but the snapshot has not seen it yet.
    for key, inv in invitations.items():
        if key in seen or inv.status == InvitationState.REVOKED:
            continue
        if snapshot.refreshed_at is not None and inv.created_at <= snapshot.refreshed_at:
            continue  # the refresh did not find this user: it is gone from IAM
        enr = enrollments.get(inv.id)
        rows.append(
            DirectoryRow(
                user_name=inv.user_name,
                status=compute_status(
                    invitation=inv, enrollment=enr, has_mfa=False, in_mfa_group=True, now=now
                ),
                email=inv.email,
                invited_by=inv.invited_by,
                invited_at=inv.created_at,
                invite_expires_at=inv.expires_at,
                enrolled_at=inv.used_at,
                mfa_devices=1 if enr is not None and enr.enabled_at is not None else 0,
                other_mfa=False,
                last_console_sign_in=None,
                in_mfa_group=True,
                has_password=inv.status == InvitationState.USED,
                in_snapshot=False,
            )
        )
    return rows, snapshot


def _matches(row: DirectoryRow, needle: str) -> bool:
    return needle in row.user_name.lower() or needle in (row.email or "").lower()


def _filtered(
    rows: Iterable[DirectoryRow], status: str | None, query: str | None
) -> list[DirectoryRow]:
    wanted = parse_status(status) if status else None
    needle = (query or "").strip().lower()
    kept = [
        r
        for r in rows
        if (wanted is None or r.status == wanted) and (not needle or _matches(r, needle))
    ]
    kept.sort(key=lambda r: (ORDER.get(r.status, len(ORDER)), r.user_name.lower()))
    return kept


def list_users(
    portal: Portal,
    *,
    status: str | None = None,
    query: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> DirectoryPage:
    """One page of the directory, filtered by status and a search on user name or email."""
    rows, snapshot = _all_rows(portal)
    counts = Counter(r.status for r in rows)
    kept = _filtered(rows, status, query)
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    pages = max(1, math.ceil(len(kept) / per_page))
    page = max(1, page)  # past the last page: no rows (an API client stops there)
    start = (page - 1) * per_page
    return DirectoryPage(
        rows=kept[start : start + per_page],
        page=page,
        per_page=per_page,
        total=len(kept),
        pages=pages,
        counts={s: counts.get(s, 0) for s in STATUSES},
        all_users=len(rows),
        snapshot=snapshot,
    )


def export_rows(
    portal: Portal, *, status: str | None = None, query: str | None = None
) -> list[DirectoryRow]:
    """Every row matching the filter (all pages), in the dashboard's order."""
    rows, _snapshot = _all_rows(portal)
    return _filtered(rows, status, query)

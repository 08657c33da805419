"""The directory as the dashboard and the API list it: statuses, filters, pages.

Paged, filtered and counted in SQL, so a page view at 5,000 users costs about what it costs at
50: only the page's rows are built in Python. A user's status is the CASE in _status, the SQL
twin of statuses.compute_status: users the portal invited follow their latest meaningful
invitation (and its latest enrollment) at the time of the view; the others, nearly everyone in
a large account, take the status stored at the refresh (directory_users.iam_status, with its
place in the order, iam_rank), so their counts and their part of a page come off an index."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from itertools import islice
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    null,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Subquery

from app.services.directory.records import Snapshot, stored_snapshot
from app.services.portal import Portal
from app.services.statuses import MEANINGFUL_INVITATION, ORDER, STATUSES, parse_status
from app.store.models import DirectoryUser, Enrollment, Invitation, UTCDateTime
from app.store.states import (
    BOUND_ENROLLMENT,
    LIVE_ENROLLMENT,
    InvitationState,
    UserStatus,
)

MAX_PER_PAGE = 1000


@dataclass(slots=True)
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


def _latest(sub: Any, partition: Any, *order: Any) -> Subquery:
    """The rows of `sub` that are the latest of their partition (ROW_NUMBER() = 1)."""
    ranked = sub.add_columns(
        func.row_number().over(partition_by=partition, order_by=order).label("rn")
    ).subquery()
    return select(ranked).where(ranked.c.rn == 1).subquery()


def _status(inv: Subquery, enr: Subquery, otherwise: Any) -> ColumnElement[str]:
    """statuses.compute_status for an invited user, in SQL (`otherwise`: no invitation)."""
    when_now = bindparam("now", type_=UTCDateTime())
    return case(
        (inv.c.id.is_(None), otherwise),
        (inv.c.status == InvitationState.REVOKED, UserStatus.REVOKED.value),
        (inv.c.status == InvitationState.USED, UserStatus.ENROLLED.value),
        (inv.c.locked_at.is_not(None), UserStatus.LOCKED.value),
        # Once the device is being bound, only finishing is left: the TTL no longer counts.
        (enr.c.status.in_(BOUND_ENROLLMENT), UserStatus.ENROLLING.value),
        (
            and_(enr.c.status.in_(LIVE_ENROLLMENT), enr.c.expires_at > when_now),
            UserStatus.ENROLLING.value,
        ),
        (
            or_(inv.c.status == InvitationState.EXPIRED, inv.c.expires_at <= when_now),
            UserStatus.INVITE_EXPIRED.value,
        ),
        else_=UserStatus.INVITED.value,
    )


@cache
def _directory() -> Subquery:
    """Every user with its status (the three arms of _arms, as one table)."""
    return union_all(*_arms()).subquery("directory")


@cache
def _managed() -> Subquery:
    """The users the portal invited (the two arms that work out a status)."""
    _plain, seen, unseen = _arms()
    return union_all(seen, unseen).subquery("managed")


@cache
def _arms() -> tuple[Any, Any, Any]:
    """Users the portal did not invite, invited users in the snapshot, invited since.

    Built once (building them costs more than running them); the time of the view (`now`)
    and of the last refresh (`refreshed_at`) are bound at each execution (_params).
    """
    inv = _latest(
        select(Invitation).where(Invitation.status.in_(MEANINGFUL_INVITATION)),
        Invitation.user_name_key,
        Invitation.created_at.desc(),
        Invitation.id.desc(),
    )
    enr = _latest(
        select(
            Enrollment.invitation_id,
            Enrollment.status,
            Enrollment.expires_at,
            Enrollment.enabled_at,
        ),
        Enrollment.invitation_id,
        Enrollment.created_at.desc(),
        Enrollment.id.desc(),
    )
    d = DirectoryUser
    # Most users were not invited by the portal: their status is the stored column, and
    # an index probe on invitations.user_name_key tells them apart without a join.
    # The union's columns take their types from this first SELECT: typed NULLs, so the
    # times of the other arms come back as datetimes.
    no_time = type_coerce(null(), UTCDateTime())
    plain = select(
        d.user_name,
        d.user_name_key.label("key"),
        d.iam_status.label("status"),
        null().label("email"),
        null().label("invited_by"),
        no_time.label("invited_at"),
        no_time.label("invite_expires_at"),
        no_time.label("enrolled_at"),
        no_time.label("enabled_at"),
        d.virtual_mfa_serials,
        d.mfa_active,
        d.password_last_used,
        d.in_mfa_group,
        d.has_password,
        true().label("in_snapshot"),
        d.iam_rank,
    ).where(_not_invited())
    seen = select(
        d.user_name,
        d.user_name_key.label("key"),
        _status(inv, enr, null()).label("status"),
        inv.c.email,
        inv.c.invited_by,
        inv.c.created_at.label("invited_at"),
        inv.c.expires_at.label("invite_expires_at"),
        inv.c.used_at.label("enrolled_at"),
        enr.c.enabled_at,
        d.virtual_mfa_serials,
        d.mfa_active,
        d.password_last_used,
        d.in_mfa_group,
        d.has_password,
        true().label("in_snapshot"),
        d.iam_rank,
    ).select_from(
        d.__table__.join(inv, inv.c.user_name_key == d.user_name_key).outerjoin(
            enr, enr.c.invitation_id == inv.c.id
        )
    )
    # Invited after the last refresh: the IAM user exists (the invite created it inside the
    # MFA group) but the snapshot has not seen it yet. Invited before it and not found by
    # it: gone from IAM.
    refreshed = bindparam("refreshed_at", type_=UTCDateTime())
    since = or_(refreshed.is_(None), inv.c.created_at > refreshed)
    unseen = (
        select(
            inv.c.user_name,
            inv.c.user_name_key.label("key"),
            _status(inv, enr, null()).label("status"),
            inv.c.email,
            inv.c.invited_by,
            inv.c.created_at.label("invited_at"),
            inv.c.expires_at.label("invite_expires_at"),
            inv.c.used_at.label("enrolled_at"),
            enr.c.enabled_at,
            null().label("virtual_mfa_serials"),
            false().label("mfa_active"),
            null().label("password_last_used"),
            true().label("in_mfa_group"),
            (inv.c.status == InvitationState.USED).label("has_password"),
            false().label("in_snapshot"),
            null().label("iam_rank"),
        )
        .select_from(inv.outerjoin(enr, enr.c.invitation_id == inv.c.id))
        .where(inv.c.status != InvitationState.REVOKED, since)
        .where(~exists().where(d.user_name_key == inv.c.user_name_key))
    )
    return plain, seen, unseen


def _params(portal: Portal, snapshot: Snapshot) -> dict[str, Any]:
    return {"now": portal.clock(), "refreshed_at": snapshot.refreshed_at}


@cache
def _not_invited() -> ColumnElement[bool]:
    """A directory user with no invitation that says something about it."""
    return ~exists().where(
        Invitation.user_name_key == DirectoryUser.user_name_key,
        Invitation.status.in_(MEANINGFUL_INVITATION),
    )


@dataclass(frozen=True)
class Filters:
    """One status filter and search, as conditions on each table they are read from."""

    all: list[Any]  # on _directory()
    plain: list[Any]  # on directory_users, for the users the portal did not invite
    managed: list[Any]  # on _managed()


def _filters(status: str | None, query: str | None) -> Filters:
    wanted = parse_status(status) if status else None
    needle = (query or "").strip().lower()
    directory, managed, d = _directory(), _managed(), DirectoryUser
    where = Filters([], [_not_invited()], [])
    for table in (directory, managed):
        conditions = where.all if table is directory else where.managed
        if wanted is not None:
            conditions.append(table.c.status == wanted)
        if needle:
            # User names are ASCII (IAM's rule): the stored key is already what lower() gives.
            conditions.append(
                or_(
                    table.c.key.contains(needle, autoescape=True),
                    func.lower(table.c.email).contains(needle, autoescape=True),
                )
            )
    if wanted is not None:
        where.plain.append(d.iam_status == wanted)
    if needle:
        where.plain.append(d.user_name_key.contains(needle, autoescape=True))
    return where


def _row(r: Any, snapshot: Snapshot) -> DirectoryRow:
    if r.in_snapshot:
        virtual = len(r.virtual_mfa_serials or [])
        if virtual == 0 and r.enabled_at is not None:
            bound_later = snapshot.refreshed_at is None or r.enabled_at > snapshot.refreshed_at
            virtual = 1 if bound_later else 0  # enrolled since the refresh
        other_mfa = bool(r.mfa_active) and not r.virtual_mfa_serials
    else:
        virtual = 1 if r.enabled_at is not None else 0
        other_mfa = False
    return DirectoryRow(
        user_name=r.user_name,
        status=r.status,
        email=r.email,
        invited_by=r.invited_by,
        invited_at=r.invited_at,
        invite_expires_at=r.invite_expires_at,
        enrolled_at=r.enrolled_at,
        mfa_devices=virtual,
        other_mfa=other_mfa,
        last_console_sign_in=r.password_last_used,
        in_mfa_group=bool(r.in_mfa_group),
        has_password=bool(r.has_password),
        in_snapshot=bool(r.in_snapshot),
    )


@cache
def _order(directory: Subquery) -> ColumnElement[int]:
    """What needs an admin first (statuses.STATUSES' order)."""
    return case({str(s): i for i, s in enumerate(STATUSES)}, value=directory.c.status)


def _rows(
    session: Session,
    directory: Subquery,
    snapshot: Snapshot,
    params: dict[str, Any],
    where_of: Filters,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[DirectoryRow]:
    if limit is None:
        # What needs an admin first (statuses.STATUSES' order), then by name.
        ordered = (_order(directory), directory.c.key)
        stmt = select(directory).where(*where_of.all).order_by(*ordered)
        return [_row(r, snapshot) for r in session.execute(stmt, params)]
    page = _page_keys(session, params, where_of, limit=limit, offset=offset)
    # Each arm read on its own, so the names reach the index on directory_users.
    plain, managed = _arms()[0], _managed()
    found = {
        r.key: r
        for stmt in (
            plain.where(DirectoryUser.user_name_key.in_(page)),
            select(managed).where(managed.c.key.in_(page)),
        )
        for r in session.execute(stmt, params)
    }
    return [_row(found[key], snapshot) for key in page if key in found]


def _page_keys(
    session: Session, params: dict[str, Any], where_of: Filters, *, limit: int, offset: int
) -> list[str]:
    """The names on one page, in order. The users the portal did not invite come straight
    off the index on (iam_rank, user_name_key), only as far as the page reaches; the few it
    invited are sorted here; the two sorted runs merge."""
    d = DirectoryUser
    plain = (
        select(d.iam_rank, d.user_name_key)
        .where(*where_of.plain)
        .order_by(d.iam_rank, d.user_name_key)
        .limit(offset + limit)
    )
    managed = _managed()
    invited = sorted(
        (ORDER[status], key)
        for key, status in session.execute(
            select(managed.c.key, managed.c.status).where(*where_of.managed), params
        ).tuples()
    )
    merged = heapq.merge(session.execute(plain, params).tuples(), invited)
    return [key for _rank, key in islice(merged, offset, offset + limit)]


def _counts(session: Session, params: dict[str, Any]) -> dict[str, int]:
    """Users per status: every snapshot user by its stored rank (off the index), then the few
    the portal invited moved from their IAM status to the one their invitation gives."""
    d, managed = DirectoryUser, _managed()
    counted: dict[str, int] = {}

    def iam_status_of(rank: int | None) -> str:
        return STATUSES[rank] if rank is not None else UserStatus.NO_MFA  # not refreshed since

    by_rank = select(d.iam_rank, func.count()).group_by(d.iam_rank)
    for rank, n in session.execute(by_rank).tuples():
        counted[iam_status_of(rank)] = counted.get(iam_status_of(rank), 0) + n
    moved = select(
        managed.c.status, managed.c.in_snapshot, managed.c.iam_rank, func.count()
    ).group_by(managed.c.status, managed.c.in_snapshot, managed.c.iam_rank)
    for status, in_snapshot, rank, n in session.execute(moved, params).tuples():
        counted[status] = counted.get(status, 0) + n
        if in_snapshot:  # counted above by its IAM status
            counted[iam_status_of(rank)] -= n
    return counted


def list_users(
    portal: Portal,
    *,
    status: str | None = None,
    query: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> DirectoryPage:
    """One page of the directory, filtered by status and a search on user name or email."""
    where_status = parse_status(status) if status else None
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, page)  # past the last page: no rows (an API client stops there)
    with portal.db.session() as session:
        snapshot = stored_snapshot(session)
        directory, params = _directory(), _params(portal, snapshot)
        counted = _counts(session, params)
        counts: dict[str, int] = {s: counted.get(s, 0) for s in STATUSES}
        where = _filters(where_status, query)
        if (query or "").strip():
            counting = select(func.count()).select_from(directory).where(*where.all)
            total = session.scalar(counting, params) or 0
        else:
            total = counts[where_status] if where_status else sum(counts.values())
        rows = _rows(
            session, directory, snapshot, params, where, limit=per_page,
            offset=(page - 1) * per_page,
        )  # fmt: skip
    return DirectoryPage(
        rows=rows,
        page=page,
        per_page=per_page,
        total=total,
        pages=max(1, math.ceil(total / per_page)),
        counts=counts,
        all_users=sum(counts.values()),
        snapshot=snapshot,
    )


def export_rows(
    portal: Portal, *, status: str | None = None, query: str | None = None
) -> list[DirectoryRow]:
    """Every row matching the filter (all pages), in the dashboard's order."""
    with portal.db.session() as session:
        snapshot = stored_snapshot(session)
        directory = _directory()
        where = _filters(status, query)
        return _rows(session, directory, snapshot, _params(portal, snapshot), where)

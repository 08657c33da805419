"""The directory: every IAM user of the account with a status, for the dashboard and the API.

A refresh reads the whole account in O(N/1000) IAM calls (ListUsers, GetGroup,
ListVirtualMFADevices, the credential report), never one call per user, and stores a
snapshot. Statuses combine that snapshot with the portal's own invitations when read, so an
invite or an enrollment shows at once, without waiting for the next refresh.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from app.aws.errors import AwsError, NoSuchEntity
from app.aws.iam import EMAIL_TAG, MANAGED_TAG, PROTECTED_TAG, IamGateway, MfaDevice
from app.aws.ownership import is_true_tag
from app.errors import Conflict, NotFound
from app.i18n import _
from app.services import audit, leases
from app.services.invitations import USER_NAME
from app.services.portal import SYSTEM_ACTOR, Actor, Portal
from app.services.statuses import (
    MEANINGFUL_INVITATION,
    ORDER,
    STATUSES,
    EnrollmentFacts,
    InvitationFacts,
    compute_status,
    parse_status,
)
from app.store.models import (
    AuditEvent,
    DirectorySnapshot,
    DirectoryUser,
    Enrollment,
    Invitation,
    new_id,
)

# AWS makes the first report in seconds for most accounts; past this the refresh goes on
# without it (each poll is one GenerateCredentialReport call, and the budget is ~20 calls).
REPORT_WAIT_SECONDS = 3.0
_REPORT_COLUMNS = ("mfa_active", "password_last_used", "password_enabled")
_INSERT_BATCH = 500
_REFRESH_LEASE = "directory-refresh"
MAX_PER_PAGE = 1000


@dataclass(frozen=True)
class Snapshot:
    """When IAM was last read; `refreshed_at` is None until the first refresh."""

    refreshed_at: datetime | None = None
    report_generated_at: datetime | None = None
    report_error: str | None = None
    user_count: int = 0
    iam_calls: int = 0


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


# -- refresh -----------------------------------------------------------------------------------


def _report_time(value: str | None) -> datetime | None:
    if not value or value in ("N/A", "no_information", "not_supported"):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def refresh_directory(portal: Portal, *, actor: Actor = SYSTEM_ACTOR) -> Snapshot:
    """Read every IAM user in O(N/1000) calls and replace the stored snapshot."""
    holder = new_id()
    if not leases.acquire(portal, name=_REFRESH_LEASE, holder=holder, ttl=timedelta(minutes=5)):
        raise Conflict(_("A refresh is already running. Wait a moment and reload the page."))
    try:
        return _refresh(portal, actor)
    finally:
        leases.release(portal, name=_REFRESH_LEASE, holder=holder)


def _refresh(portal: Portal, actor: Actor) -> Snapshot:
    calls = 0

    def counted(operation: str) -> None:
        nonlocal calls
        calls += 1
        if portal.on_iam_call:
            portal.on_iam_call(operation)

    iam = IamGateway(*portal.iam_clients, on_call=counted)
    try:
        users = iam.list_users()
        try:
            members = set(iam.group_members(portal.settings.mfa_group))
        except NoSuchEntity:
            members = set()  # not bootstrapped yet: nobody is in the group
        devices: dict[str, list[str]] = {}
        for device in iam.virtual_mfa_devices("Assigned"):
            if device.user_name:
                devices.setdefault(device.user_name, []).append(device.serial)
    except AwsError as exc:
        audit.record(
            portal,
            actor=actor,
            action="directory.refresh",
            outcome="failed",
            aws_request_id=exc.request_id,
            detail=exc.message,
        )
        raise
    report: dict[str, dict[str, str]] = {}
    report_time: datetime | None = None
    report_error: str | None = None
    try:
        rows, generated = iam.credential_report(wait_seconds=REPORT_WAIT_SECONDS)
        # Only the columns read below: the other 19 of 5,000 rows would take ~10 MiB.
        report = {
            r["user"]: {k: r[k] for k in _REPORT_COLUMNS if k in r}
            for r in rows
            if r.get("user") != "<root_account>"
        }
        report_time = _aware(generated)
    except AwsError as exc:  # the other calls still give a useful picture
        report_error = exc.message

    now = portal.clock()
    with portal.db.session() as session:
        invitations, enrollments = _portal_records(session)
    records: list[dict[str, Any]] = []
    for user in users:
        name = user["UserName"]
        line = report.get(name, {})
        serials = sorted(devices.get(name, []))
        mfa_active = line.get("mfa_active") == "true" or bool(serials)
        inv = invitations.get(name.lower())
        records.append(
            {
                "user_name": name,
                "user_id": user.get("UserId"),
                "created_at": _aware(user.get("CreateDate")),
                "password_last_used": _aware(user.get("PasswordLastUsed"))
                or _report_time(line.get("password_last_used")),
                "has_password": line.get("password_enabled") == "true",
                "in_mfa_group": name in members,
                "virtual_mfa_serials": serials,
                "mfa_active": mfa_active,
                "status": compute_status(
                    invitation=inv,
                    enrollment=enrollments.get(inv.id) if inv else None,
                    has_mfa=mfa_active,
                    in_mfa_group=name in members,
                    now=now,
                ),
                "refreshed_at": now,
            }
        )
    # One transaction, so a reader sees the old snapshot or the new one, never half of each;
    # the DELETE comes first so SQLite takes the write lock before anything else.
    with portal.db.session() as session:
        session.execute(delete(DirectoryUser))
        # In batches: one executemany of 5,000 rows holds all their bound parameters at once.
        for start in range(0, len(records), _INSERT_BATCH):
            session.execute(insert(DirectoryUser), records[start : start + _INSERT_BATCH])
        row = session.get(DirectorySnapshot, 1)
        if row is None:
            row = DirectorySnapshot(id=1)
            session.add(row)
        row.refreshed_at = now
        row.report_generated_at = report_time
        row.report_error = report_error
        row.user_count = len(records)
        row.iam_calls = calls
    audit.record(
        portal,
        actor=actor,
        action="directory.refresh",
        detail=f"{len(records)} users, {calls} IAM calls"
        + (f"; credential report unavailable: {report_error}" if report_error else ""),
    )
    return Snapshot(now, report_time, report_error, len(records), calls)


# -- reading -----------------------------------------------------------------------------------


def _portal_records(
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


def _snapshot(session: Session) -> Snapshot:
    row = session.get(DirectorySnapshot, 1)
    if row is None:
        return Snapshot()
    return Snapshot(
        row.refreshed_at, row.report_generated_at, row.report_error, row.user_count, row.iam_calls
    )


def get_snapshot(portal: Portal) -> Snapshot:
    """When IAM was last read, and how it went."""
    with portal.db.session() as session:
        return _snapshot(session)


def _all_rows(portal: Portal) -> tuple[list[DirectoryRow], Snapshot]:
    now = portal.clock()
    with portal.db.session() as session:
        snapshot = _snapshot(session)
        invitations, enrollments = _portal_records(session)
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
        if key in seen or inv.status == "revoked":
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
                has_password=inv.status == "used",
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


# -- one user, live ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessKeyFacts:
    key_id: str
    status: str
    created_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class UserDetail:
    user_name: str
    status: str
    exists_in_iam: bool
    managed: bool  # tagged iam-onboard:managed=true: the portal may act on it
    protected: bool  # tagged iam-onboard:protected=true: the portal never acts on it
    email_on_record: str  # the iam-onboard:email tag
    user_id: str | None
    arn: str | None
    created_at: datetime | None
    password_last_used: datetime | None
    groups: list[str]
    in_mfa_group: bool
    mfa_devices: list[MfaDevice]
    login_profile: bool
    login_profile_created_at: datetime | None
    password_reset_required: bool
    access_keys: list[AccessKeyFacts]
    invitation: Invitation | None  # the latest
    invitations: list[Invitation]  # every one, latest first
    enrollment: Enrollment | None  # the latest enrollment of the latest invitation
    events: list[AuditEvent]
    checked_at: datetime


def user_detail(portal: Portal, name: str) -> UserDetail:
    """One user's IAM facts, read live (a few calls for this user), and the portal's records."""
    if not USER_NAME.fullmatch(name):
        raise NotFound(_("There is no IAM user named {name} in this account.").format(name=name))
    with portal.db.session() as session:
        invitations = list(
            session.scalars(
                select(Invitation)
                .where(Invitation.user_name_key == name.lower())
                .order_by(Invitation.created_at.desc(), Invitation.id.desc())
            )
        )
        meaningful = [i for i in invitations if i.status in MEANINGFUL_INVITATION]
        latest = meaningful[0] if meaningful else None
        enrollment = None
        if latest is not None:
            enrollment = session.scalars(
                select(Enrollment)
                .where(Enrollment.invitation_id == latest.id)
                .order_by(Enrollment.created_at.desc(), Enrollment.id.desc())
            ).first()
    iam = portal.iam()
    user = iam.get_user(name)
    if user is None and latest is None:
        raise NotFound(_("There is no IAM user named {name} in this account.").format(name=name))
    groups: list[str] = []
    devices: list[MfaDevice] = []
    profile: dict[str, Any] | None = None
    keys: list[AccessKeyFacts] = []
    tags: dict[str, str] = {}
    if user is not None:
        name = user["UserName"]  # IAM's spelling
        tags = iam.user_tags(name)
        groups = iam.groups_for_user(name)
        devices = iam.mfa_devices(name)
        profile = iam.login_profile(name)
        for key in iam.access_keys(name):
            keys.append(
                AccessKeyFacts(
                    key_id=key["AccessKeyId"],
                    status=key.get("Status", ""),
                    created_at=_aware(key.get("CreateDate")),
                    last_used_at=_aware(iam.access_key_last_used(key["AccessKeyId"])),
                )
            )
    in_group = portal.settings.mfa_group in groups
    inv_view = None
    if latest is not None:
        inv_view = InvitationFacts(
            latest.id,
            latest.user_name,
            latest.email,
            latest.status,
            latest.invited_by,
            latest.created_at,
            latest.expires_at,
            latest.used_at,
            latest.locked_at,
        )
    enr_view = (
        EnrollmentFacts(enrollment.status, enrollment.expires_at, enrollment.enabled_at)
        if enrollment
        else None
    )
    return UserDetail(
        user_name=name,
        status=compute_status(
            invitation=inv_view,
            enrollment=enr_view,
            has_mfa=bool(devices),
            in_mfa_group=in_group,
            now=portal.clock(),
        ),
        exists_in_iam=user is not None,
        managed=is_true_tag(tags.get(MANAGED_TAG)),
        protected=is_true_tag(tags.get(PROTECTED_TAG)),
        email_on_record=tags.get(EMAIL_TAG, ""),
        user_id=(user or {}).get("UserId"),
        arn=(user or {}).get("Arn"),
        created_at=_aware((user or {}).get("CreateDate")),
        password_last_used=_aware((user or {}).get("PasswordLastUsed")),
        groups=groups,
        in_mfa_group=in_group,
        mfa_devices=devices,
        login_profile=profile is not None,
        login_profile_created_at=_aware((profile or {}).get("CreateDate")),
        password_reset_required=bool((profile or {}).get("PasswordResetRequired")),
        access_keys=keys,
        invitation=latest,
        invitations=invitations,
        enrollment=enrollment,
        events=audit.events_for_user(portal, name),
        checked_at=portal.clock(),
    )

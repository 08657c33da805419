"""Reading the whole account: O(N/1000) IAM calls, stored as one snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert

from app.aws.errors import AwsError, NoSuchEntity
from app.aws.iam import IamGateway
from app.errors import Conflict
from app.i18n import _
from app.services import audit, leases
from app.services.directory.records import Snapshot, aware, portal_records
from app.services.own_writes import add_to_listing
from app.services.portal import SYSTEM_ACTOR, Actor, Portal
from app.services.statuses import ORDER, compute_status, iam_status
from app.store.models import DirectoryHistory, DirectorySnapshot, DirectoryUser, new_id

# AWS makes the first report in seconds for most accounts; past this the refresh goes on
# without it (each poll is one GenerateCredentialReport call, and the budget is ~20 calls).
REPORT_WAIT_SECONDS = 3.0
_REFRESH_LEASE = "directory-refresh"

_REPORT_COLUMNS = ("mfa_active", "password_last_used", "password_enabled")
_INSERT_BATCH = 500
# How far back the dashboard's coverage chart can look; older history rows are dropped.
HISTORY_DAYS = 400


def _report_time(value: str | None) -> datetime | None:
    if not value or value in ("N/A", "no_information", "not_supported"):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
        add_to_listing(portal, users, members, devices)  # IAM may not list them yet
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
        report_time = aware(generated)
    except AwsError as exc:  # the other calls still give a useful picture
        report_error = exc.message

    now = portal.clock()
    with portal.db.session() as session:
        invitations, enrollments = portal_records(session)
    records: list[dict[str, Any]] = []
    for user in users:
        name = user["UserName"]
        line = report.get(name, {})
        serials = sorted(devices.get(name, []))
        mfa_active = line.get("mfa_active") == "true" or bool(serials)
        inv = invitations.get(name.lower())
        plain = iam_status(has_mfa=mfa_active, in_mfa_group=name in members)
        records.append(
            {
                "user_name": name,
                "user_id": user.get("UserId"),
                "created_at": aware(user.get("CreateDate")),
                "password_last_used": aware(user.get("PasswordLastUsed"))
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
                "user_name_key": name.lower(),
                "iam_status": plain,
                "iam_rank": ORDER[plain],
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
        # One point of the coverage chart (app.services.directory.headline).
        console = [r for r in records if r["has_password"]]
        session.add(
            DirectoryHistory(
                refreshed_at=now,
                users=len(records),
                console_users=len(console),
                console_with_mfa=sum(1 for r in console if r["mfa_active"]),
                report_missing=report_time is None,
            )
        )
        cutoff = now - timedelta(days=HISTORY_DAYS)
        session.execute(delete(DirectoryHistory).where(DirectoryHistory.refreshed_at < cutoff))
    audit.record(
        portal,
        actor=actor,
        action="directory.refresh",
        detail=f"{len(records)} users, {calls} IAM calls"
        + (f"; credential report unavailable: {report_error}" if report_error else ""),
    )
    return Snapshot(now, report_time, report_error, len(records), calls)

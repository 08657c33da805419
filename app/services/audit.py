"""Audit events: who did what to whom, when (UTC), from where, with what outcome."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, func, insert, or_, select
from sqlalchemy.orm import Session

from app.services.portal import Actor, Portal
from app.store.models import AuditEvent

_INSERT_EVENT = insert(cast(Table, AuditEvent.__table__))


def _clean(value: str | None, limit: int) -> str | None:
    # Control characters (newlines above all) could forge a line in an export or a log.
    if value is None:
        return None
    if value.isprintable():  # nearly always
        return value[:limit]
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    return cleaned[:limit]


def record(
    portal: Portal,
    *,
    actor: Actor,
    action: str,
    target_user: str | None = None,
    outcome: str = "ok",
    aws_request_id: str | None = None,
    detail: str | None = None,
    session: Session | None = None,
) -> None:
    """Write one audit event in its own transaction, so it survives the caller's rollback.

    With `session`, the event joins that session's transaction instead: for an event that
    belongs with the state change written there (both land, or neither).
    """
    row = {
        "at": portal.clock(),
        "actor": _clean(actor.name, 320) or "unknown",
        "action": _clean(action, 64) or "unknown",
        "target_user": _clean(target_user, 64),
        "outcome": outcome,
        "source_ip": _clean(actor.source_ip, 64),
        "aws_request_id": _clean(aws_request_id, 128),
        "detail": _clean(detail, 2000),
    }
    if session is not None:
        session.execute(_INSERT_EVENT, row)
        return
    with portal.db.session() as own:
        own.execute(_INSERT_EVENT, row)


def events_for_user(portal: Portal, user_name: str, *, limit: int = 200) -> list[AuditEvent]:
    with portal.db.session() as session:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target_user == user_name)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
        return list(rows)


# -- listing and export -------------------------------------------------------------------------
EXPORT_FIELDS = (
    "id",
    "at",
    "actor",
    "action",
    "target_user",
    "outcome",
    "source_ip",
    "aws_request_id",
    "detail",
)


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEvent]
    total: int
    page: int
    per_page: int | None

    @property
    def has_next(self) -> bool:
        return self.per_page is not None and self.page * self.per_page < self.total


def list_events(
    portal: Portal,
    *,
    actor: str | None = None,
    action: str | None = None,
    user: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int | None = 100,
) -> EventPage:
    """Events newest first, filtered; `action` also matches its sub-actions (`iam` → `iam.*`).

    `per_page=None` returns every matching event (for the exports).
    """
    query = select(AuditEvent)
    if actor:
        query = query.where(func.lower(AuditEvent.actor) == actor.strip().lower())
    if action:
        action = action.strip()
        query = query.where(
            or_(
                AuditEvent.action == action,
                AuditEvent.action.startswith(action + ".", autoescape=True),
            )
        )
    if user:
        query = query.where(func.lower(AuditEvent.target_user) == user.strip().lower())
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    page = max(1, page)
    with portal.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        if per_page is not None:
            per_page = max(1, min(per_page, 1000))
            query = query.offset((page - 1) * per_page).limit(per_page)
        events = list(session.scalars(query))
    return EventPage(events=events, total=int(total), page=page, per_page=per_page)


def _row(event: AuditEvent) -> dict[str, str | int | None]:
    return {
        "id": event.id,
        "at": event.at.astimezone(UTC).isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target_user": event.target_user,
        "outcome": event.outcome,
        "source_ip": event.source_ip,
        "aws_request_id": event.aws_request_id,
        "detail": event.detail,
    }


def _csv_cell(value: str | int | None) -> str:
    if value is None:
        return ""
    text = _clean(str(value), 10_000) or ""
    # A spreadsheet runs a cell starting with one of these as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def audit_csv(events: list[AuditEvent]) -> str:
    """The events as CSV: one line per event, formula-looking cells neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_FIELDS)
    for event in events:
        row = _row(event)
        writer.writerow([_csv_cell(row[name]) for name in EXPORT_FIELDS])
    return out.getvalue()


def audit_jsonl(events: list[AuditEvent]) -> str:
    """The events as JSON Lines; JSON escapes every control character, so one event is one line."""
    return "".join(json.dumps(_row(event), ensure_ascii=True) + "\n" for event in events)

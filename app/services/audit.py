"""Audit events: who did what to whom, when (UTC), from where, with what outcome."""

from __future__ import annotations

from sqlalchemy import select

from app.services.portal import Actor, Portal
from app.store.models import AuditEvent


def _clean(value: str | None, limit: int) -> str | None:
    # Control characters (newlines above all) could forge a line in an export or a log.
    if value is None:
        return None
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
) -> None:
    """Write one audit event in its own transaction, so it survives the caller's rollback."""
    with portal.db.session() as session:
        session.add(
            AuditEvent(
                at=portal.clock(),
                actor=_clean(actor.name, 320) or "unknown",
                action=_clean(action, 64) or "unknown",
                target_user=_clean(target_user, 64),
                outcome=outcome,
                source_ip=_clean(actor.source_ip, 64),
                aws_request_id=_clean(aws_request_id, 128),
                detail=_clean(detail, 2000),
            )
        )


def events_for_user(portal: Portal, user_name: str, *, limit: int = 200) -> list[AuditEvent]:
    with portal.db.session() as session:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target_user == user_name)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
        return list(rows)

"""Fixed-window rate limits kept in the database, so every replica counts the same attempts."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import cast

from sqlalchemy import Insert, Table, bindparam, case
from sqlalchemy.dialects import postgresql, sqlite

from app.services.portal import Portal
from app.store.models import RateLimit

_LIMITS = cast(Table, RateLimit.__table__)


@cache
def _count_statement(dialect: str) -> Insert:
    """One atomic statement: insert the key, or count one more (a new window starts at 1).

    INSERT .. ON CONFLICT DO UPDATE .. RETURNING, the same on SQLite (3.35+) and PostgreSQL:
    two replicas counting the same key at once both count, and neither reads a stale row.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    fresh = insert(_LIMITS).values(key=bindparam("key"), window_start=bindparam("now"), count=1)
    stale = _LIMITS.c.window_start <= bindparam("window_opened_before")
    return fresh.on_conflict_do_update(
        index_elements=[_LIMITS.c.key],
        set_={
            "window_start": case(
                (stale, fresh.excluded.window_start), else_=_LIMITS.c.window_start
            ),
            "count": case((stale, 1), else_=_LIMITS.c.count + 1),
        },
    ).returning(_LIMITS.c.count)


def hit(portal: Portal, *, key: str, limit: int, window: timedelta) -> bool:
    """Count one attempt under `key`; False when the limit for the current window is used up."""
    now = portal.clock()
    with portal.db.session() as session:
        count = session.execute(
            _count_statement(portal.db.engine.dialect.name),
            {"key": key, "now": now, "window_opened_before": now - window},
        ).scalar_one()
    return int(count) <= limit

"""Fixed-window rate limits kept in the database, so every replica counts the same attempts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from app.services.portal import Portal
from app.store.models import RateLimit


def hit(portal: Portal, *, key: str, limit: int, window: timedelta) -> bool:
    """Count one attempt under `key`; False when the limit for the current window is used up."""
    now = portal.clock()
    for _attempt in range(3):
        try:
            with portal.db.session() as session:
                row = session.get(RateLimit, key, with_for_update=True)
                if row is None:
                    session.add(RateLimit(key=key, window_start=now, count=1))
                    return True
                if now - row.window_start >= window:
                    row.window_start = now
                    row.count = 1
                    return True
                row.count += 1
                return row.count <= limit
        except IntegrityError:
            continue  # another replica inserted the same key first; count again
    return False

"""Named leases in the database: one replica at a time runs a periodic job."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from app.services.portal import Portal
from app.store.models import Lease


def acquire(portal: Portal, *, name: str, holder: str, ttl: timedelta) -> bool:
    """Take the lease `name` for `ttl` unless another holder has it and it has not expired."""
    now = portal.clock()
    with portal.db.session() as session:
        taken = session.execute(
            update(Lease)
            .where(Lease.name == name)
            .where((Lease.expires_at <= now) | (Lease.holder == holder))
            .values(holder=holder, expires_at=now + ttl)
        )
        if getattr(taken, "rowcount", 0):
            return True
    try:
        with portal.db.session() as session:
            session.add(Lease(name=name, holder=holder, expires_at=now + ttl))
        return True
    except IntegrityError:
        return False


def release(portal: Portal, *, name: str, holder: str) -> None:
    with portal.db.session() as session:
        session.execute(delete(Lease).where(Lease.name == name).where(Lease.holder == holder))

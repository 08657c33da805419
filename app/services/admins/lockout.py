"""Failed admin sign-ins: counted per (email, client address), with a cap per address.

Wrong passwords from one address lock that address out of that account, never the admin at
another address. An unknown email is counted exactly as a real one (same rows, same times), so
neither the answer nor the unlock time it gives tells whether the admin exists. Every attempt
also counts toward a cap per client address, checked before any password hash runs.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from app.errors import PortalError
from app.i18n import _
from app.services import ratelimit
from app.services.portal import Portal
from app.store.models import SignInFailures

# Ten failures (wrong password or wrong code) within the window lock (email, address).
LOCK_THRESHOLD = 10
LOCK_WINDOW = timedelta(minutes=15)
# The first lock lasts BASE_LOCK; every further failure before a success doubles it.
BASE_LOCK = timedelta(minutes=15)
MAX_LOCK = timedelta(hours=24)
# A day without trouble after a lock ends forgives the escalation.
FORGIVE_AFTER = timedelta(hours=24)
# Sign-in attempts from one client address, whatever the email, before the password is looked at.
ATTEMPTS_PER_ADDRESS = 30


class AccountLocked(PortalError):
    status = 429
    code = "account_locked"

    def __init__(self, until: datetime, now: datetime):
        when = f"{until:%H:%M}" if until - now < timedelta(hours=12) else f"{until:%Y-%m-%d %H:%M}"
        super().__init__(
            _(
                "This account is locked for now after too many failed sign-ins. "
                "Try again after {when} UTC or ask another admin."
            ).format(when=when)
        )
        self.until = until


class TooManyAttempts(AccountLocked):
    """Too many sign-in attempts from one client address, whatever the emails."""

    def __init__(self, now: datetime):
        PortalError.__init__(
            self,
            _(
                "Too many sign-in attempts from your network. Wait 15 minutes, then try again, "
                "or ask another admin."
            ),
        )
        self.until = now + LOCK_WINDOW


def _email_part(email: str) -> str:
    return hashlib.sha256(email.encode("utf-8")).hexdigest()[:40]


def _key(email: str, source_ip: str | None) -> str:
    return f"{_email_part(email)}:{source_ip or 'unknown'}"


def address_allows(portal: Portal, source_ip: str | None) -> bool:
    """Count one sign-in attempt from the address; False when its cap for the window is used."""
    return ratelimit.hit(
        portal,
        key=f"admin-sign-in:{source_ip or 'unknown'}",
        limit=ATTEMPTS_PER_ADDRESS,
        window=LOCK_WINDOW,
    )


def locked_until(portal: Portal, email: str, source_ip: str | None) -> datetime | None:
    """When the lock of (email, address) ends, or None when it is not locked."""
    with portal.db.session() as session:
        row = session.get(SignInFailures, _key(email, source_ip))
        until = row.locked_until if row is not None else None
    return until if until is not None and until > portal.clock() else None


def register_failure(portal: Portal, email: str, source_ip: str | None) -> datetime | None:
    """Count one failure; returns the lock's end when this failure locks (email, address)."""
    now = portal.clock()
    key = _key(email, source_ip)
    insert = postgresql.insert if portal.db.engine.dialect.name == "postgresql" else sqlite.insert
    with portal.db.session() as session:
        session.execute(
            insert(SignInFailures)
            .values(key=key, failures=0, first_failed_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        row = session.scalars(
            select(SignInFailures).where(SignInFailures.key == key).with_for_update()
        ).one()
        escalated = row.failures >= LOCK_THRESHOLD
        quiet_since_lock = row.locked_until is not None and now - row.locked_until >= FORGIVE_AFTER
        window_over = row.first_failed_at is None or now - row.first_failed_at >= LOCK_WINDOW
        if (escalated and quiet_since_lock) or (not escalated and window_over):
            row.failures = 0
            row.first_failed_at = now
        row.failures += 1
        if row.failures < LOCK_THRESHOLD:
            return None
        doublings = min(row.failures - LOCK_THRESHOLD, 16)
        row.locked_until = now + min(MAX_LOCK, BASE_LOCK * 2**doublings)
        return row.locked_until


def forget(portal: Portal, email: str, source_ip: str | None) -> None:
    """A success from this address: its count for this email starts again."""
    with portal.db.session() as session:
        session.execute(delete(SignInFailures).where(SignInFailures.key == _key(email, source_ip)))


def forget_everywhere(portal: Portal, email: str) -> bool:
    """Lift every lock of the email, from any address; True when one was in force."""
    prefix = _email_part(email) + ":"
    now = portal.clock()
    with portal.db.session() as session:
        rows = list(
            session.scalars(select(SignInFailures).where(SignInFailures.key.startswith(prefix)))
        )
        was_locked = any(r.locked_until is not None and r.locked_until > now for r in rows)
        for row in rows:
            session.delete(row)
    return was_locked


def purge_forgotten(portal: Portal) -> int:
    """Drop counts nobody needs any more (nothing for over two days); returns how many went."""
    cutoff = portal.clock() - FORGIVE_AFTER - MAX_LOCK
    with portal.db.session() as session:
        result = session.execute(
            delete(SignInFailures)
            .where(
                SignInFailures.first_failed_at.is_(None) | (SignInFailures.first_failed_at < cutoff)
            )
            .where(SignInFailures.locked_until.is_(None) | (SignInFailures.locked_until < cutoff))
        )
    return int(getattr(result, "rowcount", 0) or 0)

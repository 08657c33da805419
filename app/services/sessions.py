"""Server-side sessions: the cookie holds an opaque id, the database holds its SHA-256 and state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, update
from sqlalchemy.orm.exc import StaleDataError

from app.security.tokens import hash_token, new_token
from app.services.portal import Portal
from app.store.models import WebSession

# kind -> (idle timeout, absolute timeout)
TIMEOUTS = {
    "admin": (timedelta(minutes=30), timedelta(hours=12)),
    # password accepted, waiting for the TOTP code
    "admin_pending": (timedelta(minutes=5), timedelta(minutes=10)),
    "enroll": (timedelta(minutes=30), timedelta(hours=2)),
    # a visitor who is nobody yet, holding only the answer to a form until the next page
    "anonymous": (timedelta(minutes=30), timedelta(hours=2)),
    # gone to the identity provider to sign in; holds the flow's state, nonce and PKCE verifier
    "oidc_pending": (timedelta(minutes=10), timedelta(minutes=10)),
}
# Writing last_seen on every request would turn each page view into a write.
_TOUCH_EVERY = timedelta(seconds=60)


def create_session(
    portal: Portal,
    *,
    kind: str,
    admin_id: str | None = None,
    enrollment_id: str | None = None,
    data: dict[str, Any] | None = None,
    replaces: str | None = None,
) -> str:
    """Start a session and return the new raw id for the cookie; `replaces` is ended."""
    raw_id = new_token()
    now = portal.clock()
    _idle, absolute = TIMEOUTS[kind]
    with portal.db.session() as session:
        if replaces:
            session.execute(delete(WebSession).where(WebSession.id_hash == hash_token(replaces)))
        session.add(
            WebSession(
                id_hash=hash_token(raw_id),
                kind=kind,
                admin_id=admin_id,
                enrollment_id=enrollment_id,
                data=data or {},
                created_at=now,
                last_seen_at=now,
                expires_at=now + absolute,
            )
        )
    return raw_id


def get_session(portal: Portal, raw_id: str | None) -> WebSession | None:
    """The live session for this cookie value, or None when unknown, idle too long or expired."""
    if not raw_id:
        return None
    now = portal.clock()
    id_hash = hash_token(raw_id)
    with portal.db.session() as session:
        row = session.get(WebSession, id_hash)
        if row is None:
            return None
        idle, _absolute = TIMEOUTS.get(row.kind, (timedelta(0), timedelta(0)))
        if now >= row.expires_at or now - row.last_seen_at >= idle:
            session.execute(delete(WebSession).where(WebSession.id_hash == id_hash))
            return None
        if now - row.last_seen_at >= _TOUCH_EVERY:
            session.execute(
                update(WebSession).where(WebSession.id_hash == id_hash).values(last_seen_at=now)
            )
        return row


@contextmanager
def _unless_ended() -> Iterator[None]:
    """Another request may end the session between this one's read and its write (a lockout
    ends the enrollment's sessions, a sign-out its own): the write then finds no row, and is
    dropped, as if it had come a moment later."""
    try:
        yield
    except StaleDataError:
        pass


def update_session_data(portal: Portal, raw_id: str, **values: Any) -> None:
    with _unless_ended(), portal.db.session() as session:
        row = session.get(WebSession, hash_token(raw_id))
        if row is not None:
            row.data = {**row.data, **values}


def put_session_value(portal: Portal, raw_id: str, key: str, value: Any) -> None:
    """Keep `value` in the visitor's session; a visitor without one gets an anonymous one under
    the id its cookie already holds (nothing is proven by it, so the id need not change)."""
    now = portal.clock()
    with _unless_ended(), portal.db.session() as session:
        row = session.get(WebSession, hash_token(raw_id))
        if row is not None and now < row.expires_at:
            row.data = {**row.data, key: value}
            return
        if row is not None:
            session.delete(row)
            session.flush()
        idle, absolute = TIMEOUTS["anonymous"]
        session.add(
            WebSession(
                id_hash=hash_token(raw_id),
                kind="anonymous",
                data={key: value},
                created_at=now,
                last_seen_at=now,
                expires_at=now + absolute,
            )
        )


def pop_session_value(portal: Portal, raw_id: str, key: str) -> Any:
    """Take `key` out of the visitor's session: None when absent. (A session ended by another
    request meanwhile still hands over what it held when read: the value is gone with it.)"""
    value = None
    with _unless_ended(), portal.db.session() as session:
        row = session.get(WebSession, hash_token(raw_id))
        if row is None or key not in row.data:
            return None
        data = dict(row.data)
        value = data.pop(key)
        row.data = data
    return value


def end_session(portal: Portal, raw_id: str | None) -> None:
    if raw_id:
        with portal.db.session() as session:
            session.execute(delete(WebSession).where(WebSession.id_hash == hash_token(raw_id)))


def purge_expired_sessions(portal: Portal) -> int:
    """Delete sessions past their absolute or idle timeout; returns how many went."""
    now = portal.clock()
    idle_over = [
        (WebSession.kind == kind) & (WebSession.last_seen_at <= now - idle)
        for kind, (idle, _absolute) in TIMEOUTS.items()
    ]
    with portal.db.session() as session:
        result = session.execute(
            delete(WebSession).where(or_(WebSession.expires_at <= now, *idle_over))
        )
        return int(getattr(result, "rowcount", 0) or 0)

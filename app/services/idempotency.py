"""Idempotency-Key for API calls that create things: a retried request gets the first answer.

The key is claimed by inserting its row before the work starts, so two concurrent requests
with one key cannot both run (the second gets 409 while the first is in progress). Answers
can hold an invite link, so they are kept encrypted, and only for a day.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from app.errors import Conflict, PortalError, ValidationError
from app.i18n import _
from app.security.secretbox import SecretBox, SecretBoxError
from app.services.portal import Portal
from app.store.models import IdempotencyRecord

KEEP_FOR = timedelta(hours=24)
# A claim older than this belongs to a request that died midway; the key may run again
# (the invite itself resumes a half-done invitation instead of creating a second user).
STALE_AFTER = timedelta(minutes=10)
IN_PROGRESS = 0
MAX_KEY = 255


class IdempotencyKeyReused(PortalError):
    status = 422
    code = "idempotency_key_reused"


class RequestInProgress(PortalError):
    status = 409
    code = "idempotency_key_in_progress"


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def request_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON of a request body: key order and spacing do not count."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _record_key(scope: str, operation: str, key: str) -> str:
    # Hashed so any client key fits the column; scoped so two API tokens never collide.
    digest = hashlib.sha256(f"{operation}\n{key}".encode()).hexdigest()
    return f"{scope}:{digest}"


def _box(portal: Portal) -> SecretBox:
    return portal.secret_box("idempotency")


def _claim(portal: Portal, record_key: str, digest: str) -> StoredResponse | None:
    """Insert the in-progress row (None: this request runs) or return the stored answer."""
    now = portal.clock()
    for _attempt in range(3):
        try:
            with portal.db.session() as session:
                session.add(
                    IdempotencyRecord(
                        key=record_key,
                        request_hash=digest,
                        status_code=IN_PROGRESS,
                        response={},
                        created_at=now,
                    )
                )
            return None
        except IntegrityError:
            pass
        with portal.db.session() as session:
            row = session.get(IdempotencyRecord, record_key)
            if row is None:
                continue  # released in between: claim again
            age = now - row.created_at
            if age >= KEEP_FOR or (row.status_code == IN_PROGRESS and age >= STALE_AFTER):
                session.delete(row)
                continue
            if row.request_hash != digest:
                raise IdempotencyKeyReused(
                    _(
                        "This Idempotency-Key was already used with a different request body. "
                        "Use a new key for a new request."
                    )
                )
            if row.status_code == IN_PROGRESS:
                raise RequestInProgress(
                    _("A request with this Idempotency-Key is still in progress. Retry shortly.")
                )
            try:
                body = json.loads(_box(portal).decrypt(row.response["sealed"], bound_to=row.key))
            except (KeyError, SecretBoxError, ValueError):
                raise Conflict(
                    _("The answer to this request can no longer be shown. Use a new key.")
                ) from None
            return StoredResponse(row.status_code, body, replayed=True)
    raise RequestInProgress(
        _("A request with this Idempotency-Key is still in progress. Retry shortly.")
    )


def _complete(portal: Portal, record_key: str, status_code: int, body: dict[str, Any]) -> None:
    sealed = _box(portal).encrypt(json.dumps(body), bound_to=record_key)
    with portal.db.session() as session:
        row = session.get(IdempotencyRecord, record_key)
        if row is not None:
            row.status_code = status_code
            row.response = {"sealed": sealed}


def _release(portal: Portal, record_key: str) -> None:
    with portal.db.session() as session:
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.key == record_key))


def run_once(
    portal: Portal,
    *,
    scope: str,
    operation: str,
    key: str,
    payload: Any,
    action: Callable[[], tuple[int, dict[str, Any]]],
) -> StoredResponse:
    """Run `action` once per (scope, operation, key); a repeat with the same payload replays."""
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise ValidationError(
            _("The Idempotency-Key header must be 1 to {limit} printable characters.").format(
                limit=MAX_KEY
            ),
            field="Idempotency-Key",
        )
    record_key = _record_key(scope, operation, key)
    stored = _claim(portal, record_key, request_hash(payload))
    if stored is not None:
        return stored
    try:
        status_code, body = action()
    except PortalError as exc:
        if exc.status >= 500:
            _release(portal, record_key)  # AWS or the portal failed: a retry must run again
        else:
            error = {"error": {"code": exc.code, "message": exc.message}}
            _complete(portal, record_key, exc.status, error)
        raise
    except BaseException:
        _release(portal, record_key)
        raise
    _complete(portal, record_key, status_code, body)
    return StoredResponse(status_code, body, replayed=False)


def purge_expired(portal: Portal) -> int:
    """Forget answers older than a day (for housekeeping)."""
    with portal.db.session() as session:
        result = session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.created_at < portal.clock() - KEEP_FOR
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

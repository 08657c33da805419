"""Notifications to a chat or an operator's endpoint (IAM_ONBOARD_WEBHOOK_URL), from an outbox.

Like mail (services/outbox.py): each message is stored first, then posted from a background
thread, so a page never waits on the receiver; one that fails is retried with backoff by
housekeeping. Each event is stored once under its key (`enrolled:<invitation>`), so a page
reloaded or a chore run twice posts it once.

Formats (docs/deploy.md, "Notifications"): `slack` posts `{"text": ...}`, what Slack's
incoming webhooks (and Mattermost's, Rocket.Chat's, Teams' Workflows) take; `json` posts
`{"id", "event", "user", "text", "at", "portal"}`. With IAM_ONBOARD_WEBHOOK_SECRET set, either
carries X-IAM-Onboard-Timestamp (Unix seconds) and X-IAM-Onboard-Signature:
`sha256=<hex HMAC-SHA256 of "<timestamp>." + body with the secret>`. Texts name the IAM user
and the admin, never an email address, a link, a code or a password; they are in English,
like the server's log, whatever the language of the page that caused them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from app import metrics
from app.services.portal import Portal
from app.store.db import changed_rows
from app.store.models import WebhookMessage
from app.store.states import WebhookEvent

log = logging.getLogger("iam_onboard.webhook")
MAX_ATTEMPTS = 20
TIMEOUT_SECONDS = 10
# While one thread posts a message, no other picks it up: longer than a post can take.
CLAIM = timedelta(minutes=2)
_POSTER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhook")


def notify(portal: Portal, event: WebhookEvent, *, key: str, user: str, text: str) -> None:
    """Queue the notification (once per `key`) and post it soon; never raises, never waits."""
    if not portal.settings.webhook_url:
        return
    now = portal.clock()
    body = {"event": str(event), "user": user, "text": text, "at": now.isoformat()}
    try:
        with portal.db.session() as session:
            row = WebhookMessage(
                key=f"{event}:{key}"[:200],
                event=str(event),
                body=json.dumps(body, ensure_ascii=False),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
            session.add(row)
            session.flush()
            message_id = row.id
    except IntegrityError:
        return  # told already
    except Exception as exc:  # a notification must never undo or block what it reports
        log.warning("webhook %s not queued: %s", event, type(exc).__name__)
        return
    _POSTER.submit(_deliver_quietly, portal, message_id)


def _deliver_quietly(portal: Portal, message_id: int) -> None:
    try:
        deliver(portal, message_id)
    except Exception:  # housekeeping retries it; the thread pool must not swallow it unseen
        log.exception("webhook %s: delivery failed", message_id)


def _claim(portal: Portal, message_id: int) -> bool:
    """Take the message for one attempt; False when it was sent or another thread has it."""
    now = portal.clock()
    with portal.db.session() as session:
        return (
            changed_rows(
                session,
                update(WebhookMessage)
                .where(WebhookMessage.id == message_id, WebhookMessage.sent_at.is_(None))
                .where(
                    or_(
                        WebhookMessage.next_attempt_at.is_(None),
                        WebhookMessage.next_attempt_at <= now,
                    )
                )
                .values(next_attempt_at=now + CLAIM),
            )
            == 1
        )


def payload(portal: Portal, message_id: int, stored: str) -> bytes:
    """What is posted: Slack's `{"text": ...}` or the whole JSON document."""
    data = json.loads(stored)
    if portal.settings.webhook_format == "slack":
        data = {"text": data["text"]}
    else:
        data = {"id": message_id, **data, "portal": portal.settings.base_url}
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _post(portal: Portal, message_id: int, event: str, body: bytes) -> None:
    url = portal.settings.webhook_url
    assert url
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "iam-onboard",
        "X-IAM-Onboard-Event": event,
        "X-IAM-Onboard-Delivery": str(message_id),  # the same on every retry: dedupe by it
    }
    secret = portal.settings.webhook_secret
    if secret:
        timestamp = str(int(time.time()))
        headers["X-IAM-Onboard-Timestamp"] = timestamp
        headers["X-IAM-Onboard-Signature"] = signature(secret, timestamp, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    # The URL is an http(s) setting checked in app.config, not user input.
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310  # nosec B310
        response.read()


def deliver(portal: Portal, message_id: int) -> bool:
    """Post one message; on failure schedule a retry with backoff. True once it is delivered."""
    if not portal.settings.webhook_url or not _claim(portal, message_id):
        return False
    with portal.db.session() as session:
        row = session.get(WebhookMessage, message_id)
        assert row is not None
        event, stored = row.event, row.body
    try:
        _post(portal, message_id, event, payload(portal, message_id, stored))
    except (OSError, ValueError) as exc:
        # HTTPError is an OSError; its code says what the receiver said. The URL (a Slack
        # webhook's holds its token) is never in the error kept or logged.
        problem = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else None
        problem = problem or type(exc).__name__
        _failed(portal, message_id, problem)
        metrics.webhook_delivery(False)
        log.warning("webhook %s (%s) not delivered, will retry: %s", message_id, event, problem)
        return False
    with portal.db.session() as session:
        row = session.get(WebhookMessage, message_id)
        assert row is not None
        row.attempts += 1
        row.sent_at = portal.clock()
        row.last_error = None
    metrics.webhook_delivery(True)
    return True


def _failed(portal: Portal, message_id: int, problem: str) -> None:
    with portal.db.session() as session:
        row = session.get(WebhookMessage, message_id)
        assert row is not None
        row.attempts += 1
        row.last_error = problem[:500]
        row.next_attempt_at = portal.clock() + timedelta(minutes=min(60, 2 ** min(row.attempts, 6)))


def retry_unsent(portal: Portal) -> int:
    """Post every message that is due (housekeeping); returns how many were delivered."""
    if not portal.settings.webhook_url:
        return 0
    with portal.db.session() as session:
        due = list(
            session.scalars(
                select(WebhookMessage.id)
                .where(WebhookMessage.sent_at.is_(None))
                .where(WebhookMessage.attempts < MAX_ATTEMPTS)
                .where(WebhookMessage.next_attempt_at <= portal.clock())
                .order_by(WebhookMessage.id)
            )
        )
    return sum(deliver(portal, message_id) for message_id in due)


def stamp(moment: datetime) -> str:
    """A key part for events that can happen again (a second lock after a new link)."""
    return moment.strftime("%Y%m%dT%H%M%S%f")

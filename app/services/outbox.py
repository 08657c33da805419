"""The outbox, the one way mail leaves: every message goes to the outbox table first, then to
SMTP when one is configured.

A message that fails to send stays in the outbox and is retried; none is lost. Its bodies hold
enrollment links, so they are kept encrypted (like MFA seeds) and dropped once the mail was
delivered or its link has expired: the row stays, as a record of what was sent to whom.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from sqlalchemy import and_, func, or_, select, update

from app import metrics
from app.security.secretbox import SecretBox, SecretBoxError
from app.services.portal import Portal
from app.store.models import OutboxMail

log = logging.getLogger("iam_onboard.mail")
MAX_ATTEMPTS = 20
_BOX_PURPOSE = "outbox-mail"
_SEALED = "v1."  # the secret box's prefix: older rows kept their bodies in clear


@dataclass(frozen=True)
class Mail:
    """An outbox message with its bodies readable ("" once they were dropped)."""

    id: int
    to: str
    subject: str
    text_body: str
    html_body: str | None
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None


def _box(portal: Portal) -> SecretBox:
    return portal.secret_box(_BOX_PURPOSE)


def _seal(portal: Portal, body: str, to: str) -> str:
    return _box(portal).encrypt(body, bound_to=to) if body else ""


def _open(portal: Portal, body: str | None, to: str) -> str:
    if not body or not body.startswith(_SEALED):
        return body or ""
    try:
        return _box(portal).decrypt(body, bound_to=to)
    except SecretBoxError:
        log.warning("an outbox body could not be decrypted (another secret key?)")
        return ""


def read_mail(portal: Portal, row: OutboxMail) -> Mail:
    return Mail(
        id=row.id,
        to=row.to,
        subject=row.subject,
        text_body=_open(portal, row.text_body, row.to),
        html_body=_open(portal, row.html_body, row.to) or None,
        created_at=row.created_at,
        sent_at=row.sent_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )


def enqueue_mail(
    portal: Portal,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    expires_at: datetime | None = None,
) -> int:
    """Store a message in the outbox and try to send it now; returns its outbox id.

    `expires_at`: when the link in it stops working; its bodies are dropped then.
    """
    now = portal.clock()
    ttl = timedelta(hours=portal.settings.invite_ttl_hours)
    with portal.db.session() as session:
        row = OutboxMail(
            to=to,
            subject=subject,
            text_body=_seal(portal, text, to),
            html_body=_seal(portal, html, to) if html else None,
            created_at=now,
            next_attempt_at=now,
            expires_at=expires_at or now + ttl,
        )
        session.add(row)
        session.flush()
        mail_id = row.id
    if portal.settings.smtp_url:
        deliver(portal, mail_id)
    return mail_id


def _message(portal: Portal, row: OutboxMail) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = portal.settings.mail_from
    msg["To"] = row.to
    msg["Subject"] = row.subject
    msg["Message-ID"] = make_msgid(domain="iam-onboard")
    mail = read_mail(portal, row)
    msg.set_content(mail.text_body)
    if mail.html_body:
        msg.add_alternative(mail.html_body, subtype="html")
    return msg


def _send(url: str, msg: EmailMessage) -> None:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(host, parts.port or 465, timeout=15, context=context)
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=15)
    with client:
        client.ehlo()
        if parts.scheme == "smtp+starttls":
            client.starttls(context=context)
            client.ehlo()
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(msg)


def deliver(portal: Portal, mail_id: int) -> bool:
    """Try to send one outbox message over SMTP; on failure schedule a retry with backoff."""
    url = portal.settings.smtp_url
    if not url:
        return False
    with portal.db.session() as session:
        row = session.get(OutboxMail, mail_id)
        if row is None or row.sent_at is not None:
            return row is not None
        msg = _message(portal, row)
    try:
        _send(url, msg)
    except (OSError, smtplib.SMTPException) as exc:
        with portal.db.session() as session:
            row = session.get(OutboxMail, mail_id)
            assert row is not None
            row.attempts += 1
            row.last_error = f"{type(exc).__name__}: {exc}"[:500]
            backoff = timedelta(minutes=min(60, 2 ** min(row.attempts, 6)))
            row.next_attempt_at = portal.clock() + backoff
        log.warning("mail %s not sent (attempt will be retried): %s", mail_id, type(exc).__name__)
        metrics.mail_delivery(False)
        return False
    with portal.db.session() as session:
        row = session.get(OutboxMail, mail_id)
        assert row is not None
        row.attempts += 1
        row.sent_at = portal.clock()
        row.last_error = None
        # Delivered: the link now lives in the recipient's mailbox only.
        row.text_body = ""
        row.html_body = None
    metrics.mail_delivery(True)
    return True


def drop_spent_bodies(portal: Portal) -> int:
    """Empty the bodies of mail delivered or whose link expired; returns how many were emptied."""
    now = portal.clock()
    ttl = timedelta(hours=portal.settings.invite_ttl_hours)
    with portal.db.session() as session:
        result = session.execute(
            update(OutboxMail)
            .where(or_(OutboxMail.text_body != "", OutboxMail.html_body.is_not(None)))
            .where(
                or_(
                    OutboxMail.sent_at.is_not(None),
                    OutboxMail.expires_at <= now,
                    # Written before mail had an expiry: as long as an invitation lasts.
                    and_(OutboxMail.expires_at.is_(None), OutboxMail.created_at <= now - ttl),
                )
            )
            .values(text_body="", html_body=None)
        )
    return int(getattr(result, "rowcount", 0) or 0)


def retry_unsent(portal: Portal) -> int:
    """Send every outbox message that is due; returns how many went out."""
    if not portal.settings.smtp_url:
        return 0
    with portal.db.session() as session:
        due = list(
            session.scalars(
                select(OutboxMail.id)
                .where(OutboxMail.sent_at.is_(None))
                .where(OutboxMail.attempts < MAX_ATTEMPTS)
                .where(
                    or_(
                        OutboxMail.next_attempt_at.is_(None),
                        OutboxMail.next_attempt_at <= portal.clock(),
                    )
                )
                .order_by(OutboxMail.id)
            )
        )
    return sum(deliver(portal, mail_id) for mail_id in due)


def outbox_readable(portal: Portal) -> bool:
    """Admins may read mail bodies in the portal only in the sandbox or when there is no SMTP."""
    return portal.settings.sandbox or not portal.settings.smtp_url


def list_outbox(portal: Portal, *, limit: int = 200) -> list[Mail]:
    """The newest messages first."""
    with portal.db.session() as session:
        rows = session.scalars(select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit))
        return [read_mail(portal, row) for row in rows]


def get_mail(portal: Portal, mail_id: int) -> Mail | None:
    with portal.db.session() as session:
        row = session.get(OutboxMail, mail_id)
        return read_mail(portal, row) if row is not None else None


def unsent_count(portal: Portal) -> int:
    with portal.db.session() as session:
        count = session.scalar(
            select(func.count()).select_from(OutboxMail).where(OutboxMail.sent_at.is_(None))
        )
        return int(count or 0)

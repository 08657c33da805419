"""Mail: every message goes to the outbox table first, then to SMTP when one is configured.

A message that fails to send stays in the outbox and is retried; none is lost.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from sqlalchemy import func, or_, select

from app.services.portal import Portal
from app.store.models import OutboxMail

log = logging.getLogger("iam_onboard.mail")
MAX_ATTEMPTS = 20


def enqueue_mail(
    portal: Portal, *, to: str, subject: str, text: str, html: str | None = None
) -> int:
    """Store a message in the outbox and try to send it now; returns its outbox id."""
    with portal.db.session() as session:
        row = OutboxMail(
            to=to,
            subject=subject,
            text_body=text,
            html_body=html,
            created_at=portal.clock(),
            next_attempt_at=portal.clock(),
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
    msg.set_content(row.text_body)
    if row.html_body:
        msg.add_alternative(row.html_body, subtype="html")
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
        return False
    with portal.db.session() as session:
        row = session.get(OutboxMail, mail_id)
        assert row is not None
        row.attempts += 1
        row.sent_at = portal.clock()
        row.last_error = None
    return True


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


def list_outbox(portal: Portal, *, limit: int = 200) -> list[OutboxMail]:
    """The newest messages first."""
    with portal.db.session() as session:
        return list(session.scalars(select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)))


def get_mail(portal: Portal, mail_id: int) -> OutboxMail | None:
    with portal.db.session() as session:
        return session.get(OutboxMail, mail_id)


def unsent_count(portal: Portal) -> int:
    with portal.db.session() as session:
        count = session.scalar(
            select(func.count()).select_from(OutboxMail).where(OutboxMail.sent_at.is_(None))
        )
        return int(count or 0)

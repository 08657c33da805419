"""The mails the portal writes: the invitation to a new hire, the "enrolled" notice to the admin."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from app.aws.errors import AwsError
from app.i18n import _, current_language
from app.services.invitations import EMAIL, InviteResult
from app.services.outbox import enqueue_mail, get_mail
from app.services.portal import Portal
from app.store.models import Invitation
from app.template_env import new_environment

log = logging.getLogger("iam_onboard.mail")
# Mail has its own environment: no request, no page globals, only the templates and translations.
_mail_env = new_environment()


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class MailDelivery:
    """What became of a mail: sent over SMTP, kept for a retry, or in the outbox (no SMTP)."""

    mail_id: int
    to: str
    state: Literal["sent", "retrying", "outbox"]


def looks_like_email(value: str | None) -> bool:
    return bool(value) and EMAIL.fullmatch(value or "") is not None


def account_label(portal: Portal) -> str | None:
    """The account alias, else the account id; None when IAM cannot be asked right now."""
    iam = portal.iam()
    try:
        return iam.account_alias() or iam.caller_identity()["account"]
    except AwsError as exc:
        # A mail without the account name is better than no mail.
        log.warning("account name unavailable for a mail: %s", exc.code)
        return None


def _inviter_text(invited_by: str) -> str:
    return invited_by if looks_like_email(invited_by) else _("your AWS administrator")


def _render(name: str, context: dict[str, Any]) -> tuple[str, str]:
    context = {**context, "lang": current_language()}
    text = _mail_env.get_template(f"mail/{name}.txt").render(context)
    return text, _mail_env.get_template(f"mail/{name}.html").render(context)


def invite_mail(
    portal: Portal,
    *,
    result: InviteResult,
    inviter: str,
    note: str | None = None,
    account: str | None = None,
) -> Mail:
    """The invitation: who invites, what the portal is, the link, its expiry, what to have ready."""
    hours = max(1, round((result.expires_at - portal.clock()).total_seconds() / 3600))
    context = {
        "user_name": result.user_name,
        "link": result.link,
        "expires": f"{result.expires_at:%Y-%m-%d %H:%M}",
        "hours": hours,
        "inviter": _inviter_text(inviter),
        "note": (note or "").strip() or None,
        "account": account,
        "portal_url": portal.settings.base_url,
    }
    if account:
        subject = _("Set up your sign-in to AWS account {account}").format(account=account)
    else:
        subject = _("Set up your AWS sign-in")
    text, html = _render("invite", context)
    return Mail(subject=subject, text=text, html=html)


def _delivery(portal: Portal, mail_id: int, to: str) -> MailDelivery:
    if not portal.settings.smtp_url:
        return MailDelivery(mail_id, to, "outbox")
    row = get_mail(portal, mail_id)
    sent = row is not None and row.sent_at is not None
    return MailDelivery(mail_id, to, "sent" if sent else "retrying")


def send_invite_mail(portal: Portal, *, result: InviteResult) -> MailDelivery:
    """Write the invitation mail for a fresh invite (or resend) and try to send it now."""
    with portal.db.session() as session:
        inv = session.get(Invitation, result.invitation_id)
        inviter = inv.invited_by if inv is not None else ""
        note = inv.note if inv is not None else None
    mail = invite_mail(
        portal, result=result, inviter=inviter, note=note, account=account_label(portal)
    )
    mail_id = enqueue_mail(
        portal,
        to=result.email,
        subject=mail.subject,
        text=mail.text,
        html=mail.html,
        expires_at=result.expires_at,
    )
    return _delivery(portal, mail_id, result.email)


def enrolled_mail(
    portal: Portal,
    *,
    user_name: str,
    email: str,
    enrolled_at: datetime,
    groups: list[str],
) -> Mail:
    """The notice to the inviting admin that their new hire finished."""
    context = {
        "user_name": user_name,
        "email": email,
        "when": f"{enrolled_at:%Y-%m-%d %H:%M}",
        "groups": groups,
        "user_url": portal.link(f"/admin/users/{user_name}"),
    }
    subject = _("{user_name} has set up MFA and can sign in").format(user_name=user_name)
    text, html = _render("enrolled", context)
    return Mail(subject=subject, text=text, html=html)


def send_enrolled_notice(portal: Portal, *, invitation_id: str) -> int | None:
    """Tell the inviting admin that the new hire finished; None when the inviter has no email."""
    with portal.db.session() as session:
        inv = session.get(Invitation, invitation_id)
    if inv is None or not looks_like_email(inv.invited_by):
        return None
    to, user_name, email = inv.invited_by, inv.user_name, inv.email
    groups = list(inv.extra_groups or [])
    enrolled_at = inv.used_at or portal.clock()
    mail = enrolled_mail(
        portal, user_name=user_name, email=email, enrolled_at=enrolled_at, groups=groups
    )
    return enqueue_mail(portal, to=to, subject=mail.subject, text=mail.text, html=mail.html)

"""Admins who sign in with the company's OpenID Provider: who may, their admin records, step-up.

The protocol itself (code flow, ID token checks): app/services/admins/oidc.py. An SSO admin is
keyed by the provider's (issuer, subject); the email comes from the token and follows it.
Every sign-in, refusal and step-up is audited with the provider's subject.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import urlsplit

from sqlalchemy import select

from app.i18n import _
from app.services import audit
from app.services.admins.accounts import AdminInfo, find_admin, normalize_email
from app.services.admins.oidc import Identity, OidcRefused
from app.services.portal import Actor, Portal
from app.store.models import Admin

# A login at the provider for a step-up confirms the destructive action made within this time.
STEP_UP_VALID = timedelta(minutes=5)


def provider_name(portal: Portal) -> str:
    settings = portal.settings
    if settings.oidc_provider_name:
        return settings.oidc_provider_name
    return urlsplit(settings.oidc_issuer or "").hostname or _("your identity provider")


def _who(identity: Identity | None, subject: str | None = None) -> str:
    if identity is not None and identity.email:
        return normalize_email(identity.email)
    sub = identity.subject if identity is not None else subject
    return f"oidc:{sub}" if sub else "unknown"


def record_refusal(
    portal: Portal,
    refused: OidcRefused,
    *,
    source_ip: str | None,
    step_up: bool = False,
    identity: Identity | None = None,
) -> None:
    """One audit entry for a refused sign-in or step-up: the reason and the subject, no token."""
    subject = identity.subject if identity is not None else refused.subject
    detail = f"via {portal.settings.oidc_issuer}: {refused.reason}"
    if subject:
        detail += f" (subject {subject})"
    audit.record(
        portal,
        actor=Actor(_who(identity, subject), source_ip),
        action="admin.step_up" if step_up else "admin.sign_in",
        outcome="failed",
        detail=detail,
    )


def _allowed(portal: Portal, identity: Identity) -> str | None:
    """None when this identity may be an admin, else why not (for the audit log).

    Every check that is configured must hold: a domain and a group both, when both are set.
    """
    settings = portal.settings
    if settings.oidc_allowed_domains:
        domain = identity.email.rpartition("@")[2].lower()
        if not identity.email_verified:
            return "email not verified by the provider"
        if domain not in settings.oidc_allowed_domains:
            return f"email domain {domain} not allowed"
    if settings.oidc_admin_groups and not set(identity.groups) & set(settings.oidc_admin_groups):
        return "not in an allowed admin group"
    return None


def _refuse(portal: Portal, identity: Identity, reason: str, source_ip: str | None) -> NoReturn:
    refused = OidcRefused(
        _(
            "Your account at {provider} is not allowed to administer this portal. Ask an admin "
            "to add you to the admin group."
        ).format(provider=provider_name(portal)),
        reason=reason,
        subject=identity.subject,
    )
    record_refusal(portal, refused, source_ip=source_ip, identity=identity)
    raise refused


def admit(portal: Portal, identity: Identity, *, source_ip: str | None = None) -> AdminInfo:
    """The admin record for this provider identity: found, linked by email, or created.

    Raises OidcRefused (audited) for someone outside the allowed domains or groups, a
    deactivated admin, or an email held by a different admin.
    """
    email = normalize_email(identity.email)
    if not email or "@" not in email:
        _refuse(portal, identity, "no email address in the ID token", source_ip)
    if (reason := _allowed(portal, identity)) is not None:
        _refuse(portal, identity, reason, source_ip)
    now = portal.clock()
    problem: str | None = None
    with portal.db.session() as session:
        admin = session.scalars(
            select(Admin).where(
                Admin.oidc_issuer == identity.issuer, Admin.oidc_subject == identity.subject
            )
        ).first()
        by_email = find_admin(session, email)
        if admin is None and by_email is not None:
            if by_email.oidc_subject is None and identity.email_verified:
                admin = by_email  # a local admin signing in with SSO for the first time
            else:
                problem = "email belongs to another admin"
        elif admin is not None and by_email is not None and by_email.id != admin.id:
            problem = "email belongs to another admin"
        if problem is None:
            if admin is None:
                admin = Admin(email=email, created_at=now, active=True)
                session.add(admin)
            elif not admin.active:
                problem = "admin deactivated"
        if problem is None and admin is not None:
            admin.oidc_issuer = identity.issuer
            admin.oidc_subject = identity.subject
            admin.email = email
            session.flush()
            info = AdminInfo(admin.id, email)
    if problem is not None:
        _refuse(portal, identity, problem, source_ip)
    audit.record(
        portal,
        actor=Actor(email, source_ip),
        action="admin.sign_in",
        detail=f"{email} via {identity.issuer} (subject {identity.subject})",
    )
    return info


def confirm_step_up(
    portal: Portal, *, admin_id: str, identity: Identity, source_ip: str | None = None
) -> datetime:
    """A fresh login at the provider by this same admin; returns when it counts from."""
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        same = (
            admin is not None
            and admin.active
            and admin.oidc_issuer == identity.issuer
            and admin.oidc_subject == identity.subject
        )
        email = admin.email if admin is not None else ""
    if not same:
        refused = OidcRefused(
            _("You signed in at {provider} as someone else. Sign in as yourself.").format(
                provider=provider_name(portal)
            ),
            reason=f"step-up by another provider account (admin {email or admin_id})",
            subject=identity.subject,
        )
        record_refusal(portal, refused, source_ip=source_ip, step_up=True, identity=identity)
        raise refused
    audit.record(
        portal,
        actor=Actor(email, source_ip),
        action="admin.step_up",
        detail=f"fresh sign-in at {identity.issuer} (subject {identity.subject})",
    )
    return portal.clock()


def use_step_up(
    portal: Portal,
    *,
    admin_id: str,
    email: str,
    confirmed_at: datetime | None,
    purpose: str,
    source_ip: str | None = None,
) -> bool:
    """Whether a provider step-up confirmed at `confirmed_at` still covers this action.

    The caller forgets it after use: one fresh login, one destructive action.
    """
    if confirmed_at is None or portal.clock() - confirmed_at > STEP_UP_VALID:
        return False
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        subject = admin.oidc_subject if admin is not None and admin.active else None
    if subject is None:
        return False
    audit.record(
        portal,
        actor=Actor(email, source_ip),
        action="admin.step_up",
        detail=f"{purpose} (confirmed at the identity provider, subject {subject})",
    )
    return True


# The session data key of the last step-up at the provider (an ISO time).
STEP_UP_AT = "sso_step_up_at"


def confirmed_at(session_data: dict[str, Any]) -> datetime | None:
    value = session_data.get(STEP_UP_AT)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def has_totp(portal: Portal, admin_id: str) -> bool:
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        return bool(admin is not None and admin.totp_seed_encrypted and admin.password_hash)

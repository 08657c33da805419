"""Setting up an admin: the one-time link, the password, then the portal TOTP (two codes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.errors import Conflict, NotFound, ValidationError
from app.i18n import N_, _
from app.security import passwords
from app.security.secretbox import SecretBoxError
from app.security.tokens import hash_token, new_token
from app.security.totp import (
    CodeProblem,
    PairCheck,
    check_code_pair,
    group_secret,
    new_seed,
    otpauth_uri,
)
from app.services import audit, ratelimit
from app.services.admins.accounts import AdminInfo, find_admin, is_set_up, normalize_email, totp_box
from app.services.admins.lockout import LOCK_WINDOW
from app.services.invitations import EMAIL
from app.services.portal import Actor, Portal
from app.store.models import Admin

SETUP_TTL = timedelta(hours=24)
SETUP_CODE_TRIES = 10
TOTP_ISSUER = "iam-onboard"


@dataclass(frozen=True)
class SetupLink:
    admin_id: str
    email: str
    link: str
    expires_at: datetime


@dataclass(frozen=True)
class TotpSetup:
    """What the setup page shows: the secret for typing and the otpauth link (its QR code)."""

    secret_grouped: str
    uri: str


class AdminAlreadySetUp(Conflict):
    code = "admin_exists"


def create_admin(portal: Portal, *, email: str, actor: Actor) -> SetupLink:
    """Create an admin (or renew an unfinished one's link) and return a one-time setup link."""
    email = normalize_email(email)
    if len(email) > 320 or not EMAIL.fullmatch(email):
        raise ValidationError(_("Enter an email address like name@example.com."), field="email")
    token = new_token()
    now = portal.clock()
    with portal.db.session() as session:
        admin = find_admin(session, email)
        if admin is not None and is_set_up(admin):
            raise AdminAlreadySetUp(
                _("An admin {email} exists and has finished setting up.").format(email=email)
            )
        if admin is None:
            admin = Admin(email=email, created_at=now)
            session.add(admin)
        # A new link kills the previous one.
        admin.setup_token_hash = hash_token(token)
        admin.setup_expires_at = now + SETUP_TTL
        admin.active = True
        session.flush()
        admin_id = admin.id
    audit.record(portal, actor=actor, action="admin.create", detail=email)
    return SetupLink(
        admin_id=admin_id,
        email=email,
        link=portal.link(f"/admin/setup/{token}"),
        expires_at=now + SETUP_TTL,
    )


def admin_for_setup(portal: Portal, *, token: str) -> AdminInfo:
    """The admin a setup link belongs to; NotFound when the link is unknown, used or expired."""
    with portal.db.session() as session:
        admin = session.scalars(
            select(Admin).where(Admin.setup_token_hash == hash_token(token))
        ).first()
        if admin is None or is_set_up(admin) or not admin.active:
            raise NotFound(
                _(
                    "This setup link is not valid: it was already used or replaced by a newer one. "
                    "Ask for a new one (iam-onboard create-admin EMAIL)."
                )
            )
        if admin.setup_expires_at is None or admin.setup_expires_at <= portal.clock():
            raise NotFound(
                _(
                    "This setup link has expired (links last 24 hours). "
                    "Ask for a new one (iam-onboard create-admin EMAIL)."
                )
            )
        return AdminInfo(admin.id, admin.email)


_PASSWORD_MESSAGES = {
    passwords.ERR_TOO_SHORT: N_("Use at least 12 characters."),
    passwords.ERR_TOO_LONG: N_("Use at most 1024 characters."),
    passwords.ERR_CONTAINS_EMAIL: N_("Do not use your email address in the password."),
    passwords.ERR_TOO_COMMON: N_(
        "This password is common or easy to guess: attackers try such ones first. "
        "Use a few unrelated words, or a password manager's."
    ),
}


def set_setup_password(
    portal: Portal, *, token: str, password: str, password_confirm: str
) -> AdminInfo:
    """Step one of setup: choose the password (the link stays valid until the TOTP is bound)."""
    info = admin_for_setup(portal, token=token)
    problem = passwords.check_new_admin_password(password, info.email)
    if problem is not None:
        raise ValidationError(_(_PASSWORD_MESSAGES[problem]), field="password")
    if password != password_confirm:
        raise ValidationError(_("The two passwords are not the same."), field="password_confirm")
    with portal.db.session() as session:
        admin = session.get(Admin, info.admin_id)
        assert admin is not None
        admin.password_hash = passwords.hash_password(password)
    return info


def new_pending_seed(portal: Portal, *, admin_id: str, token: str) -> str:
    """A fresh TOTP seed for setup, encrypted for keeping in the server-side session."""
    # Bound to the setup link: a newer link for the same admin makes this seed unreadable.
    bound = f"pending:{admin_id}:{hash_token(token)}"
    return totp_box(portal).encrypt(new_seed(), bound_to=bound)


def _pending_seed(portal: Portal, admin_id: str, pending: str) -> str:
    expired = NotFound(_("This setup has expired. Open your setup link again."))
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        token_hash = admin.setup_token_hash if admin is not None else None
    if not token_hash:
        raise expired
    try:
        return totp_box(portal).decrypt(pending, bound_to=f"pending:{admin_id}:{token_hash}")
    except SecretBoxError:
        raise expired from None


def totp_setup(portal: Portal, *, admin_id: str, email: str, pending_seed: str) -> TotpSetup:
    """The secret and otpauth link of the seed waiting to be confirmed."""
    seed = _pending_seed(portal, admin_id, pending_seed)
    uri = otpauth_uri(seed=seed, issuer=TOTP_ISSUER, account_name=email)
    return TotpSetup(secret_grouped=group_secret(seed), uri=uri)


_CODE_MESSAGES = {
    CodeProblem.FORMAT: N_("Type the 6 digits your app shows."),
    CodeProblem.WRONG: N_("These codes do not match. Type the code your app shows now."),
    CodeProblem.NOT_CONSECUTIVE: N_(
        "The codes are right but not one after the other: type a code, wait until it "
        "changes, then type the next one."
    ),
    CodeProblem.REUSED: N_("These codes were already used. Wait for the next code."),
}


def _code_message(check: PairCheck) -> str:
    if check.problem is CodeProblem.CLOCK_SKEW:
        return _(
            "These codes belong to a time about {minutes} minutes away from now: set your "
            "phone's clock to automatic, then try again."
        ).format(minutes=abs(check.skew_minutes or 0))
    return _(
        _CODE_MESSAGES.get(check.problem or CodeProblem.WRONG, _CODE_MESSAGES[CodeProblem.WRONG])
    )


def finish_totp_setup(
    portal: Portal,
    *,
    admin_id: str,
    pending_seed: str,
    code1: str,
    code2: str,
    source_ip: str | None = None,
) -> AdminInfo:
    """Step two of setup: two consecutive codes bind the portal TOTP and end the setup link."""
    now = portal.clock()
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        if (
            admin is None
            or is_set_up(admin)
            or not admin.password_hash
            or admin.setup_expires_at is None
            or admin.setup_expires_at <= now
        ):
            raise NotFound(_("This setup has expired. Open your setup link again."))
        email = admin.email
    if not ratelimit.hit(
        portal, key=f"admin-setup-code:{admin_id}", limit=SETUP_CODE_TRIES, window=LOCK_WINDOW
    ):
        raise ValidationError(
            _("Too many wrong codes. Wait 15 minutes, then open your setup link again."),
            field="code1",
        )
    seed = _pending_seed(portal, admin_id, pending_seed)
    check = check_code_pair(seed=seed, code1=code1, code2=code2, now=now.timestamp())
    if not check.ok or check.step is None:
        raise ValidationError(_code_message(check), field="code1")
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        assert admin is not None
        admin.totp_seed_encrypted = totp_box(portal).encrypt(seed, bound_to=admin_id)
        # Both setup codes are spent: the next sign-in needs a newer one.
        admin.totp_last_step = check.step + 1
        admin.setup_token_hash = None
        admin.setup_expires_at = None
    audit.record(portal, actor=Actor(email, source_ip), action="admin.setup", detail=email)
    return AdminInfo(admin_id, email)

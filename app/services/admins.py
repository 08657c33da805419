"""Admin accounts: one-time setup links, password + portal TOTP, sign-in with lockout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, PortalError, ValidationError
from app.i18n import _
from app.security import passwords
from app.security.secretbox import SecretBox, SecretBoxError, secret_box
from app.security.tokens import hash_token, new_token
from app.security.totp import (
    CodeProblem,
    PairCheck,
    check_code_pair,
    check_single_code,
    current_step,
    group_secret,
    new_seed,
    otpauth_uri,
)
from app.services import admin_lockout, audit, ratelimit
from app.services.admin_lockout import LOCK_THRESHOLD, LOCK_WINDOW, AccountLocked, TooManyAttempts
from app.services.invitations import EMAIL
from app.services.portal import Actor, Portal
from app.store.models import Admin

# Sign-in failures are counted per (email, client address) in admin_lockout.
__all__ = ["LOCK_THRESHOLD", "LOCK_WINDOW", "AccountLocked", "TooManyAttempts"]

SETUP_TTL = timedelta(hours=24)
SETUP_CODE_TRIES = 10
TOTP_ISSUER = "iam-onboard"
_BOX_PURPOSE = "admin-totp"


@dataclass(frozen=True)
class AdminInfo:
    admin_id: str
    email: str


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


class SignInRefused(PortalError):
    """Wrong email, password or code; `field` is where the page shows it."""

    status = 400
    code = "sign_in_refused"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


def _box(portal: Portal) -> SecretBox:
    return secret_box(portal.settings.secret_key, _BOX_PURPOSE)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _find(session: Session, email: str) -> Admin | None:
    return session.scalars(select(Admin).where(func.lower(Admin.email) == email)).first()


def is_set_up(admin: Admin) -> bool:
    return bool(admin.password_hash and admin.totp_seed_encrypted)


# -- creating an admin and the setup link -------------------------------------------------------
def create_admin(portal: Portal, *, email: str, actor: Actor) -> SetupLink:
    """Create an admin (or renew an unfinished one's link) and return a one-time setup link."""
    email = normalize_email(email)
    if len(email) > 320 or not EMAIL.fullmatch(email):
        raise ValidationError(_("Enter an email address like name@example.com."), field="email")
    token = new_token()
    now = portal.clock()
    with portal.db.session() as session:
        admin = _find(session, email)
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


def N_(message: str) -> str:
    """Marks a text for the translation catalog; it is translated where it is shown."""
    return message


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
    return _box(portal).encrypt(new_seed(), bound_to=bound)


def _pending_seed(portal: Portal, admin_id: str, pending: str) -> str:
    expired = NotFound(_("This setup has expired. Open your setup link again."))
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        token_hash = admin.setup_token_hash if admin is not None else None
    if not token_hash:
        raise expired
    try:
        return _box(portal).decrypt(pending, bound_to=f"pending:{admin_id}:{token_hash}")
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
        admin.totp_seed_encrypted = _box(portal).encrypt(seed, bound_to=admin_id)
        # Both setup codes are spent: the next sign-in needs a newer one.
        admin.totp_last_step = check.step + 1
        admin.setup_token_hash = None
        admin.setup_expires_at = None
    audit.record(portal, actor=Actor(email, source_ip), action="admin.setup", detail=email)
    return AdminInfo(admin_id, email)


# -- signing in -------------------------------------------------------------------------------
def _fail(
    portal: Portal,
    email: str,
    source_ip: str | None,
    what: str,
    action: str = "admin.sign_in",
) -> None:
    locked = admin_lockout.register_failure(portal, email, source_ip)
    actor = Actor(email or "unknown", source_ip)
    audit.record(portal, actor=actor, action=action, outcome="failed", detail=what)
    if locked is not None:
        audit.record(
            portal,
            actor=actor,
            action="admin.locked",
            outcome="failed",
            detail=f"locked until {locked:%Y-%m-%d %H:%M} UTC",
        )
        raise AccountLocked(locked, portal.clock())


_NO_MATCH = N_("This email address and password do not match an admin account.")


def sign_in_password(
    portal: Portal, *, email: str, password: str, source_ip: str | None = None
) -> AdminInfo:
    """First factor: the password. The caller then asks for a code (sign_in_code).

    Known and unknown emails take the same steps (the cap per address, the lock of this email
    at this address, one hash, one count), so neither the answer nor its time tells them apart.
    """
    email = normalize_email(email)
    now = portal.clock()
    if not admin_lockout.address_allows(portal, source_ip):
        raise TooManyAttempts(now)
    with portal.db.session() as session:
        admin = _find(session, email) if email else None
        usable = admin is not None and admin.active and is_set_up(admin)
        admin_id = admin.id if admin is not None else ""
        stored_hash = admin.password_hash if admin is not None and usable else None
    locked = admin_lockout.locked_until(portal, email, source_ip)
    if locked is not None:
        raise AccountLocked(locked, now)
    if stored_hash is None:
        passwords.verify_against_dummy(password)
        _fail(portal, email, source_ip, "no such admin")
        raise SignInRefused(_(_NO_MATCH), field="password")
    if not passwords.verify_password(stored_hash, password):
        _fail(portal, email, source_ip, "wrong password")
        raise SignInRefused(_(_NO_MATCH), field="password")
    if passwords.needs_rehash(stored_hash):
        with portal.db.session() as session:
            row = session.get(Admin, admin_id)
            assert row is not None
            row.password_hash = passwords.hash_password(password)
    return AdminInfo(admin_id, email)


def sign_in_code(
    portal: Portal, *, admin_id: str, code: str, source_ip: str | None = None
) -> AdminInfo:
    """Second factor: one portal TOTP code, never a step already used. Success resets failures."""
    info = _accept_code(
        portal, admin_id=admin_id, code=code, source_ip=source_ip, action="admin.sign_in"
    )
    audit.record(
        portal, actor=Actor(info.email, source_ip), action="admin.sign_in", detail=info.email
    )
    return info


def verify_step_up(
    portal: Portal,
    *,
    admin_id: str,
    code: str,
    source_ip: str | None = None,
    purpose: str = "",
) -> AdminInfo:
    """A fresh portal TOTP code before a destructive action; wrong codes count toward lockout."""
    info = _accept_code(
        portal, admin_id=admin_id, code=code, source_ip=source_ip, action="admin.step_up"
    )
    audit.record(
        portal, actor=Actor(info.email, source_ip), action="admin.step_up", detail=purpose or None
    )
    return info


def _accept_code(
    portal: Portal, *, admin_id: str, code: str, source_ip: str | None, action: str
) -> AdminInfo:
    """One portal TOTP code, within a step of now and newer than the last one accepted."""
    now = portal.clock()
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        if admin is None or not admin.active or not is_set_up(admin):
            raise SignInRefused(_("Sign in again."), field="code")
        email = admin.email
        seed_token = admin.totp_seed_encrypted or ""
        last_step = admin.totp_last_step
    locked = admin_lockout.locked_until(portal, email, source_ip)
    if locked is not None:
        raise AccountLocked(locked, now)
    seed = _box(portal).decrypt(seed_token, bound_to=admin_id)
    now_step = current_step(now.timestamp())
    used = (
        {s for s in range(now_step - 2, now_step + 3) if s <= last_step}
        if last_step is not None
        else set()
    )
    check = check_single_code(seed=seed, code=code, now=now.timestamp(), used_steps=used)
    if not check.ok or check.step is None:
        _fail(portal, email, source_ip, "wrong code", action=action)
        if check.problem is CodeProblem.REUSED:
            raise SignInRefused(
                _("This code was already used. Wait until your app shows a new one."), field="code"
            )
        raise SignInRefused(
            _("This code is not right. Type the code your app shows now."), field="code"
        )
    with portal.db.session() as session:
        row = session.get(Admin, admin_id, with_for_update=True)
        assert row is not None
        if row.totp_last_step is not None and check.step <= row.totp_last_step:
            # Another request spent this step in the meantime.
            raise SignInRefused(
                _("This code was already used. Wait until your app shows a new one."), field="code"
            )
        row.totp_last_step = check.step
    admin_lockout.forget(portal, email, source_ip)
    return AdminInfo(admin_id, email)


def record_sign_out(portal: Portal, *, email: str, source_ip: str | None = None) -> None:
    audit.record(portal, actor=Actor(email, source_ip), action="admin.sign_out", detail=email)


def admin_by_id(portal: Portal, admin_id: str) -> AdminInfo | None:
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        return AdminInfo(admin.id, admin.email) if admin is not None else None


def active_admin(portal: Portal, admin_id: str) -> AdminInfo | None:
    """The admin behind a session, or None when it no longer exists or was deactivated."""
    with portal.db.session() as session:
        admin = session.get(Admin, admin_id)
        if admin is None or not admin.active:
            return None
        return AdminInfo(admin.id, admin.email)


def unlock_admin(portal: Portal, *, email: str, actor: Actor) -> AdminInfo:
    """Lift a lockout after failed sign-ins or step-ups, and forget the failures counted."""
    email = normalize_email(email)
    with portal.db.session() as session:
        admin = _find(session, email) if email else None
        if admin is None:
            raise NotFound(_("There is no admin {email}.").format(email=email))
        info = AdminInfo(admin.id, admin.email)
    # From every address: the admin asked for help, wherever the failures came from.
    was_locked = admin_lockout.forget_everywhere(portal, email)
    detail = f"{email} (was locked)" if was_locked else f"{email} (was not locked)"
    audit.record(portal, actor=actor, action="admin.unlock", detail=detail)
    return info

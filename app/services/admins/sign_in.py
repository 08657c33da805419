"""Signing in (password, then a portal TOTP code) and the fresh code before a destructive action."""

from __future__ import annotations

from app.errors import PortalError
from app.i18n import N_, _
from app.security import passwords
from app.security.totp import CodeProblem, check_single_code, current_step
from app.services import audit
from app.services.admins import lockout
from app.services.admins.accounts import AdminInfo, find_admin, is_set_up, normalize_email, totp_box
from app.services.admins.lockout import AccountLocked, TooManyAttempts
from app.services.portal import Actor, Portal
from app.store.models import Admin


class SignInRefused(PortalError):
    """Wrong email, password or code; `field` is where the page shows it."""

    status = 400
    code = "sign_in_refused"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


def _fail(
    portal: Portal,
    email: str,
    source_ip: str | None,
    what: str,
    action: str = "admin.sign_in",
) -> None:
    locked = lockout.register_failure(portal, email, source_ip)
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
    if not lockout.address_allows(portal, source_ip):
        raise TooManyAttempts(now)
    with portal.db.session() as session:
        admin = find_admin(session, email) if email else None
        usable = admin is not None and admin.active and is_set_up(admin)
        admin_id = admin.id if admin is not None else ""
        stored_hash = admin.password_hash if admin is not None and usable else None
    locked = lockout.locked_until(portal, email, source_ip)
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
    locked = lockout.locked_until(portal, email, source_ip)
    if locked is not None:
        raise AccountLocked(locked, now)
    seed, sealed_before = totp_box(portal).open(seed_token, bound_to=admin_id)
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
        if sealed_before:  # the app secret was rotated: seal the seed with the new one
            row.totp_seed_encrypted = totp_box(portal).encrypt(seed, bound_to=admin_id)
    lockout.forget(portal, email, source_ip)
    return AdminInfo(admin_id, email)


def record_sign_out(portal: Portal, *, email: str, source_ip: str | None = None) -> None:
    audit.record(portal, actor=Actor(email, source_ip), action="admin.sign_out", detail=email)


def record_local_refused(portal: Portal, *, email: str, source_ip: str | None = None) -> None:
    """A password sign-in tried while local admin accounts are switched off."""
    audit.record(
        portal,
        actor=Actor(normalize_email(email) or "unknown", source_ip),
        action="admin.sign_in",
        outcome="failed",
        detail="local admin accounts are switched off (IAM_ONBOARD_LOCAL_ADMINS=false)",
    )

"""Admin accounts: who they are, whether their setup is finished, lifting a lockout."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.i18n import _
from app.security.secretbox import SecretBox
from app.services import audit
from app.services.admins import lockout
from app.services.portal import Actor, Portal
from app.store.models import Admin

_BOX_PURPOSE = "admin-totp"


@dataclass(frozen=True)
class AdminInfo:
    admin_id: str
    email: str
    # Whether a portal TOTP code can confirm a step-up (an SSO-only admin has none).
    has_totp: bool = True


def totp_box(portal: Portal) -> SecretBox:
    return portal.secret_box(_BOX_PURPOSE)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_admin(session: Session, email: str) -> Admin | None:
    return session.scalars(select(Admin).where(func.lower(Admin.email) == email)).first()


def is_set_up(admin: Admin) -> bool:
    return bool(admin.password_hash and admin.totp_seed_encrypted)


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
        return AdminInfo(admin.id, admin.email, has_totp=is_set_up(admin))


def unlock_admin(portal: Portal, *, email: str, actor: Actor) -> AdminInfo:
    """Lift a lockout after failed sign-ins or step-ups, and forget the failures counted."""
    email = normalize_email(email)
    with portal.db.session() as session:
        admin = find_admin(session, email) if email else None
        if admin is None:
            raise NotFound(_("There is no admin {email}.").format(email=email))
        info = AdminInfo(admin.id, admin.email)
    # From every address: the admin asked for help, wherever the failures came from.
    was_locked = lockout.forget_everywhere(portal, email)
    detail = f"{email} (was locked)" if was_locked else f"{email} (was not locked)"
    audit.record(portal, actor=actor, action="admin.unlock", detail=detail)
    return info

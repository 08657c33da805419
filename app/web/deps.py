"""Route dependencies: the portal, the visitor's session, the signed-in admin, the enrollment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request

from app.services import admins
from app.services.admins import sso
from app.services.portal import Actor, Portal
from app.services.sessions import end_session, get_session
from app.store.models import WebSession


async def get_portal(request: Request) -> Portal:
    # async: FastAPI runs a plain-def dependency in a worker thread, a hop for one attribute.
    portal: Portal = request.app.state.portal
    return portal


PortalDep = Annotated[Portal, Depends(get_portal)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def session_raw_id(request: Request) -> str:
    raw: str = request.state.session_raw_id
    return raw


def current_session(request: Request, portal: PortalDep) -> WebSession | None:
    """The server-side session behind the visitor's cookie, if any (cached per request)."""
    if not hasattr(request.state, "web_session"):
        raw_id = session_raw_id(request)
        # An id minted for this request (the visitor came without a cookie) names no session.
        minted = raw_id == getattr(request.state, "minted_session_raw_id", None)
        request.state.web_session = None if minted else get_session(portal, raw_id)
    session: WebSession | None = request.state.web_session
    return session


SessionDep = Annotated[WebSession | None, Depends(current_session)]


class RedirectToSignIn(HTTPException):
    """Raised for admin pages without an admin session; handled as a 303 to the sign-in page."""

    def __init__(self, next_path: str):
        target = "/admin/sign-in?" + urlencode({"next": next_path})
        super().__init__(status_code=303, headers={"Location": target})


@dataclass(frozen=True)
class AdminContext:
    admin_id: str
    email: str
    actor: Actor


def require_admin(request: Request, portal: PortalDep, session: SessionDep) -> AdminContext:
    """Admin pages need an admin session; an enrollment session opens none of them."""
    if session is None or session.kind != "admin" or not session.admin_id:
        raise RedirectToSignIn(request.url.path)
    # A primary-key read per request: a deactivated admin's open sessions stop at once.
    info = admins.active_admin(portal, session.admin_id)
    settings = portal.settings
    # With local admins switched off, a session from a password sign-in ends too.
    local_refused = not settings.local_admins and session.data.get("sso") is not True
    if info is None or local_refused:
        end_session(portal, session_raw_id(request))
        request.state.web_session = None
        raise RedirectToSignIn(request.url.path)
    if settings.sso and session.data.get("sso") is True:
        confirmed_at = sso.confirmed_at(session.data)
        request.state.step_up_sso = {
            "provider": sso.provider_name(portal),
            "totp": info.has_totp,
            "confirmed": confirmed_at is not None
            and portal.clock() - confirmed_at <= sso.STEP_UP_VALID,
        }
    email = str(session.data.get("email", ""))
    actor = Actor(email or f"admin:{session.admin_id}", client_ip(request))
    request.state.log_actor = actor.name  # the request's log line names who acted
    return AdminContext(admin_id=session.admin_id, email=email, actor=actor)


AdminDep = Annotated[AdminContext, Depends(require_admin)]

"""Admin sign-in and step-up through the company's OpenID Provider (docs/architecture.md,
"Admin sign-in with SSO").

GET links, not forms, start a flow: the browser then leaves for the provider, and the CSP's
form-action 'self' would stop a form that redirects there. The flow (state, nonce, PKCE
verifier) is kept in the session row, and taken out of it when the callback arrives, so a
callback replayed with the same `state` finds nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.errors import NotFound
from app.i18n import _
from app.security.tokens import new_token
from app.services import ratelimit
from app.services.admins import oidc, sso
from app.services.sessions import create_session, end_session, update_session_data
from app.web.common import safe_next
from app.web.deps import AdminDep, PortalDep, SessionDep, client_ip, session_raw_id
from app.web.templating import render

router = APIRouter(include_in_schema=False)

DEFAULT_NEXT = "/admin/dashboard"
# Each start writes a session row: starts per client address and minute are capped, so a loop
# of GETs cannot fill the table (rows left behind go with their 10-minute timeout).
STARTS_PER_MINUTE = 20
# Session data keys.
FLOW = "oidc_flow"
STEP_UP_AT = sso.STEP_UP_AT


def _require_sso(portal: PortalDep) -> None:
    if not portal.settings.sso:
        raise NotFound(_("Sign-in with an identity provider is not set up."))


def refused_page(
    request: Request, message: str, *, back: str, step_up: bool = False, status_code: int = 403
) -> Response:
    headline = _("Not confirmed") if step_up else _("Not signed in")
    return render(
        request,
        "admin/oidc_refused.html",
        {"message": message, "back": back, "headline": headline},
        status_code=status_code,
    )


@router.get("/admin/oidc/start")
def start(request: Request, portal: PortalDep, next: str = "") -> Response:
    """Off to the provider to sign in; a new session row holds the flow until the callback."""
    _require_sso(portal)
    key = f"oidc-start:{client_ip(request) or 'unknown'}"
    if not ratelimit.hit(portal, key=key, limit=STARTS_PER_MINUTE, window=timedelta(minutes=1)):
        return refused_page(
            request,
            _("Too many attempts from your network. Wait a minute, then try again."),
            back="/admin/sign-in",
            status_code=429,
        )
    url, flow = oidc.begin(
        portal, purpose=oidc.SIGN_IN, next_path=safe_next(next) if next else DEFAULT_NEXT
    )
    request.state.new_session_raw_id = create_session(
        portal, kind="oidc_pending", data={FLOW: flow}, replaces=session_raw_id(request)
    )
    return RedirectResponse(url, status_code=303)


@router.get("/admin/oidc/step-up")
def start_step_up(request: Request, portal: PortalDep, admin: AdminDep, next: str = "") -> Response:
    """Off to the provider for a fresh login (prompt=login, max_age=0) before a destructive
    action; the admin's session stays as it is and holds the flow."""
    _require_sso(portal)
    url, flow = oidc.begin(
        portal, purpose=oidc.STEP_UP, next_path=safe_next(next) if next else DEFAULT_NEXT
    )
    update_session_data(portal, session_raw_id(request), **{FLOW: flow})
    return RedirectResponse(url, status_code=303)


@router.get("/admin/oidc/callback")
def callback(
    request: Request,
    portal: PortalDep,
    session: SessionDep,
    state: str = "",
    code: str = "",
    error: str = "",
    iss: str = "",
) -> Response:
    _require_sso(portal)
    flow: dict[str, Any] | None = None
    if session is not None and isinstance(session.data.get(FLOW), dict):
        flow = dict(session.data[FLOW])
        # Taken out before anything else: whatever happens next, this state is spent.
        update_session_data(portal, session_raw_id(request), **{FLOW: None})
    step_up = flow is not None and flow.get("purpose") == oidc.STEP_UP
    next_path = safe_next(str(flow.get("next") or DEFAULT_NEXT)) if flow else DEFAULT_NEXT
    source_ip = client_ip(request)
    try:
        identity = oidc.finish(portal, flow=flow, state=state, code=code, error=error, iss=iss)
    except oidc.OidcRefused as exc:
        sso.record_refusal(portal, exc, source_ip=source_ip, step_up=step_up)
        return _refused(request, portal, exc, step_up=step_up, next_path=next_path)
    if step_up:
        return _finish_step_up(request, portal, session, identity, next_path)
    try:
        info = sso.admit(portal, identity, source_ip=source_ip)
    except oidc.OidcRefused as exc:  # audited by admit
        return _refused(request, portal, exc, step_up=False, next_path=next_path)
    request.state.new_session_raw_id = create_session(
        portal,
        kind="admin",
        admin_id=info.admin_id,
        data={"email": info.email, "sso": True},
        replaces=session_raw_id(request),
    )
    return RedirectResponse(next_path, status_code=303)


def _finish_step_up(
    request: Request,
    portal: PortalDep,
    session: SessionDep,
    identity: oidc.Identity,
    next_path: str,
) -> Response:
    if session is None or session.kind != "admin" or not session.admin_id:
        return RedirectResponse("/admin/sign-in?m=expired", status_code=303)
    try:
        at = sso.confirm_step_up(
            portal, admin_id=session.admin_id, identity=identity, source_ip=client_ip(request)
        )
    except oidc.OidcRefused as exc:  # audited by confirm_step_up
        return _refused(request, portal, exc, step_up=True, next_path=next_path)
    update_session_data(portal, session_raw_id(request), **{STEP_UP_AT: at.isoformat()})
    return RedirectResponse(next_path, status_code=303)


def _refused(
    request: Request,
    portal: PortalDep,
    exc: oidc.OidcRefused,
    *,
    step_up: bool,
    next_path: str,
) -> Response:
    if step_up:
        return refused_page(request, exc.message, back=next_path, step_up=True)
    # A half-done sign-in is worth nothing: the visitor starts over with a fresh anonymous id.
    session = getattr(request.state, "web_session", None)
    if session is None or session.kind != "admin":
        end_session(portal, session_raw_id(request))
        request.state.new_session_raw_id = new_token()
    return refused_page(request, exc.message, back="/admin/sign-in")

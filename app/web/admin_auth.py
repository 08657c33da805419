"""Admin setup (one-time link: password, then portal TOTP), sign-in with a code, sign-out."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from app.errors import NotFound, ValidationError
from app.i18n import _
from app.security.tokens import new_token
from app.services import admins
from app.services.admins import sso
from app.services.sessions import create_session, end_session
from app.store.models import WebSession
from app.web.common import safe_next
from app.web.deps import PortalDep, SessionDep, client_ip, session_raw_id
from app.web.prg import kept_page, see_other
from app.web.qr_svg import qr_svg
from app.web.templating import render

router = APIRouter(include_in_schema=False)

DEFAULT_NEXT = "/admin/dashboard"
_SETUP = "setup"
_SIGN_IN = "sign_in"


def _flash_text(key: str | None) -> str | None:
    # Fixed keys only: a message from the query string would let a link put words in our mouth.
    return {
        "signed_out": _("You are signed out."),
        "setup_done": _(
            "Your admin account is ready. Sign in with your email, your password and a code "
            "from your authenticator app."
        ),
        "expired": _("That took too long. Please sign in again."),
    }.get(key or "")


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _start_session(request: Request, portal: PortalDep, **values: Any) -> None:
    """A new session id every time someone proves something (link, password, code)."""
    raw = create_session(portal, replaces=session_raw_id(request), **values)
    request.state.new_session_raw_id = raw


def _pending(session: WebSession | None, stage: str) -> WebSession | None:
    if session is None or session.kind != "admin_pending" or not session.admin_id:
        return None
    return session if session.data.get("stage") == stage else None


@router.get("/admin")
def admin_home() -> Response:
    return _redirect(DEFAULT_NEXT)


# -- setup --------------------------------------------------------------------------------------
@router.get("/admin/setup/totp")
def setup_totp_page(request: Request, portal: PortalDep, session: SessionDep) -> Response:
    pending = _pending(session, _SETUP)
    if pending is None or not pending.admin_id:
        raise NotFound(_("This setup has expired. Open your setup link again."))
    return _render_totp(request, portal, pending, errors={})


def _render_totp(
    request: Request,
    portal: PortalDep,
    pending: WebSession,
    *,
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    assert pending.admin_id is not None
    email = str(pending.data.get("email", ""))
    setup = admins.totp_setup(
        portal,
        admin_id=pending.admin_id,
        email=email,
        pending_seed=str(pending.data.get("seed", "")),
    )
    return render(
        request,
        "admin/setup_totp.html",
        {
            "email": email,
            "setup": setup,
            "qr": Markup(  # noqa: S704  # nosec B704 - our own SVG, its texts escaped by ElementTree
                qr_svg(setup.uri, title=_("QR code for your authenticator app"))
            ),
            "errors": errors,
        },
        status_code=status_code,
    )


@router.post("/admin/setup/totp")
def setup_totp(
    request: Request,
    portal: PortalDep,
    session: SessionDep,
    code1: str = Form(""),
    code2: str = Form(""),
) -> Response:
    pending = _pending(session, _SETUP)
    if pending is None or not pending.admin_id:
        raise NotFound(_("This setup has expired. Open your setup link again."))
    try:
        admins.finish_totp_setup(
            portal,
            admin_id=pending.admin_id,
            pending_seed=str(pending.data.get("seed", "")),
            code1=code1,
            code2=code2,
            source_ip=client_ip(request),
        )
    except ValidationError as exc:
        page = _render_totp(
            request, portal, pending, errors={exc.field or "code1": exc.message}, status_code=400
        )
        return see_other(request, page, at="/admin/setup/totp")
    end_session(portal, session_raw_id(request))
    request.state.new_session_raw_id = new_token()
    return _redirect("/admin/sign-in?m=setup_done")


@router.get("/admin/setup/{token}")
def setup_page(request: Request, portal: PortalDep, token: str) -> Response:
    if (refused := _local_refused(request, portal)) is not None:
        return refused
    info = admins.admin_for_setup(portal, token=token)
    return render(request, "admin/setup_password.html", {"email": info.email, "errors": {}})


@router.post("/admin/setup/{token}")
def setup_password(
    request: Request,
    portal: PortalDep,
    token: str,
    password: str = Form(""),
    password_confirm: str = Form(""),
) -> Response:
    if (refused := _local_refused(request, portal)) is not None:
        return refused
    try:
        info = admins.set_setup_password(
            portal, token=token, password=password, password_confirm=password_confirm
        )
    except ValidationError as exc:
        email = admins.admin_for_setup(portal, token=token).email
        page = render(
            request,
            "admin/setup_password.html",
            {"email": email, "errors": {exc.field or "password": exc.message}},
            status_code=400,
        )
        # The setup link's own address shows the answer (the token is in it already).
        return see_other(request, page, at=request.url.path)
    _start_session(
        request,
        portal,
        kind="admin_pending",
        admin_id=info.admin_id,
        data={
            "stage": _SETUP,
            "email": info.email,
            "seed": admins.new_pending_seed(portal, admin_id=info.admin_id, token=token),
        },
    )
    return _redirect("/admin/setup/totp")


# -- sign-in ------------------------------------------------------------------------------------
def _sign_in_page(
    request: Request,
    *,
    email: str = "",
    next_path: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    settings = request.app.state.portal.settings
    return render(
        request,
        "admin/sign_in.html",
        {
            "email": email,
            "next": next_path,
            "errors": errors or {},
            "sso_provider": sso.provider_name(request.app.state.portal) if settings.sso else None,
            "local_admins": settings.local_admins,
        },
        status_code=status_code,
    )


def _local_refused(request: Request, portal: PortalDep) -> Response | None:
    """With IAM_ONBOARD_LOCAL_ADMINS=false, a page saying so instead of any password step."""
    if portal.settings.local_admins:
        return None
    return render(
        request,
        "admin/oidc_refused.html",
        {
            "message": _(
                "Admin accounts with a portal password are switched off here. "
                "Sign in with {provider}."
            ).format(provider=sso.provider_name(portal)),
            "back": "/admin/sign-in",
            "headline": _("Not signed in"),
        },
        status_code=403,
    )


@router.get("/admin/sign-in")
def sign_in_page(
    request: Request, session: SessionDep, next: str = "", m: str | None = None
) -> Response:
    kept = kept_page(request)  # the answer to this form, even for one signed in already
    if kept is not None:
        return kept
    if session is not None and session.kind == "admin":
        return _redirect(safe_next(next) if next else DEFAULT_NEXT)
    request.state.flash = _flash_text(m)
    return _sign_in_page(request, next_path=next)


@router.post("/admin/sign-in")
def sign_in(
    request: Request,
    portal: PortalDep,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form(""),
) -> Response:
    if (refused := _local_refused(request, portal)) is not None:
        admins.record_local_refused(portal, email=email, source_ip=client_ip(request))
        return refused
    try:
        info = admins.sign_in_password(
            portal, email=email, password=password, source_ip=client_ip(request)
        )
    except admins.AccountLocked as exc:
        page = _sign_in_page(
            request, email=email, next_path=next, errors={"_form": exc.message}, status_code=429
        )
        return see_other(request, page, at=_sign_in_url(next))
    except admins.SignInRefused as exc:
        # The email comes back in the form; the password never does.
        page = _sign_in_page(
            request,
            email=email,
            next_path=next,
            errors={exc.field or "password": exc.message},
            status_code=400,
        )
        return see_other(request, page, at=_sign_in_url(next))
    _start_session(
        request,
        portal,
        kind="admin_pending",
        admin_id=info.admin_id,
        data={
            "stage": _SIGN_IN,
            "email": info.email,
            "next": safe_next(next) if next else DEFAULT_NEXT,
        },
    )
    return _redirect("/admin/sign-in/code")


def _sign_in_url(next_path: str) -> str:
    return "/admin/sign-in?" + urlencode({"next": next_path}) if next_path else "/admin/sign-in"


def _code_page(
    request: Request, *, errors: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    return render(
        request, "admin/sign_in_code.html", {"errors": errors or {}}, status_code=status_code
    )


@router.get("/admin/sign-in/code")
def sign_in_code_page(request: Request, session: SessionDep) -> Response:
    if _pending(session, _SIGN_IN) is None:
        return _redirect("/admin/sign-in?m=expired")
    return _code_page(request)


@router.post("/admin/sign-in/code")
def sign_in_code(
    request: Request, portal: PortalDep, session: SessionDep, code: str = Form("")
) -> Response:
    pending = _pending(session, _SIGN_IN)
    if pending is None or not pending.admin_id:
        return _redirect("/admin/sign-in?m=expired")
    if (refused := _local_refused(request, portal)) is not None:
        return refused
    try:
        info = admins.sign_in_code(
            portal, admin_id=pending.admin_id, code=code, source_ip=client_ip(request)
        )
    except admins.AccountLocked as exc:
        # The half-done sign-in is worthless now; the password must be given again later.
        end_session(portal, session_raw_id(request))
        request.state.new_session_raw_id = new_token()
        request.state.session_raw_id = request.state.new_session_raw_id  # the page's CSRF token
        page = _sign_in_page(
            request,
            email=str(pending.data.get("email", "")),
            errors={"_form": exc.message},
            status_code=429,
        )
        return see_other(request, page, at="/admin/sign-in")
    except admins.SignInRefused as exc:
        page = _code_page(request, errors={exc.field or "code": exc.message}, status_code=400)
        return see_other(request, page, at="/admin/sign-in/code")
    _start_session(
        request, portal, kind="admin", admin_id=info.admin_id, data={"email": info.email}
    )
    return _redirect(str(pending.data.get("next") or DEFAULT_NEXT))


@router.post("/admin/sign-out")
def sign_out(request: Request, portal: PortalDep, session: SessionDep) -> Response:
    if session is not None and session.kind == "admin":
        admins.record_sign_out(
            portal, email=str(session.data.get("email", "")), source_ip=client_ip(request)
        )
    end_session(portal, session_raw_id(request))
    # A fresh anonymous id: nothing of the old session survives in the browser either.
    request.state.new_session_raw_id = new_token()
    return _redirect("/admin/sign-in?m=signed_out")

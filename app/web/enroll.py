"""The new hire's pages: the link's landing page, then token-free pages bound to a session."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from app.aws.errors import AwsError
from app.errors import PortalError
from app.i18n import _
from app.security.totp import group_secret, seconds_left
from app.services import enrollment, ratelimit
from app.services.portal import Actor, Portal
from app.services.sessions import create_session
from app.web.deps import PortalDep, client_ip, current_session, session_raw_id
from app.web.prg import ANSWER_PATH, see_other
from app.web.qr_svg import qr_svg
from app.web.templating import render

router = APIRouter(include_in_schema=False)

NO_STORE = {"Cache-Control": "no-store"}
APPS = ("Google Authenticator", "Microsoft Authenticator", "1Password", "Authy")


class EnrollmentSessionMissing(PortalError):
    status = 403
    code = "enrollment_session_missing"


def current_enrollment(request: Request, portal: Portal) -> str:
    """The enrollment behind the visitor's session; these pages open no other kind.

    Called by each page in its own worker thread rather than declared as a dependency: a
    dependency that reads the database runs in a thread of its own, one more hop a page.
    """
    session = current_session(request, portal)
    if session is None or session.kind != "enroll" or not session.enrollment_id:
        raise EnrollmentSessionMissing(
            _(
                "Your enrollment session has ended. Open the link from your invitation "
                "email again to continue."
            )
        )
    return session.enrollment_id


def _actor(request: Request) -> Actor:
    return Actor("enrollee", client_ip(request))


def _message(request: Request, title: str, message: str, status: int) -> Response:
    return render(
        request, "enroll/message.html", {"title": title, "message": message}, status_code=status
    )


def _stopped(request: Request, exc: PortalError) -> Response:
    """The plain pages for a link or enrollment that cannot go on."""
    if isinstance(exc, enrollment.EnrollmentLocked):
        return _message(request, _("This link is locked"), exc.message, exc.status)
    if isinstance(exc, enrollment.LinkUnusable):
        if exc.reason == "unknown":
            title = _("This link does not work")
        elif exc.reason == "used":
            title = _("You already set up your sign-in")
        else:
            title = _("This link can't be used")
        return _message(request, title, exc.message, exc.status)
    return _message(request, _("That did not work"), exc.message, exc.status)


def _answer(request: Request, page: Response, at: str = "/enroll") -> Response:
    """Post/Redirect/Get: the answer to a form is shown by the GET of `at` (app/web/prg.py)."""
    return see_other(request, page, at=at)


def _stopped_answer(request: Request, exc: PortalError) -> Response:
    """A link or enrollment that cannot go on, answering a form: at /answer, because a lock
    ends the enrollment's session and /enroll would only say that."""
    return see_other(request, _stopped(request, exc), at=ANSWER_PATH)


def _rate_limited(request: Request, portal: PortalDep) -> Response | None:
    key = f"enroll:{client_ip(request) or 'unknown'}"
    if ratelimit.hit(
        portal,
        key=key,
        limit=portal.settings.enroll_rate_limit_per_minute,
        window=timedelta(minutes=1),
    ):
        return None
    return _message(
        request,
        _("Too many attempts"),
        _("Too many attempts from your network. Wait a minute, then try again."),
        429,
    )


# The fixed paths come before /enroll/{token}, which would otherwise match them.
@router.get("/enroll")
def enroll_page(request: Request, portal: PortalDep) -> Response:
    enrollment_id = current_enrollment(request, portal)
    try:
        view = enrollment.enrollment_view(portal, enrollment_id=enrollment_id)
    except (enrollment.LinkUnusable, enrollment.EnrollmentLocked) as exc:
        return _stopped(request, exc)
    if view.stage == "done":
        return RedirectResponse("/enroll/done", status_code=303)
    if view.stage == "scan":
        return _scan_page(request, portal, view)
    return render(request, "enroll/status.html", {"view": view}, headers=NO_STORE)


def _scan_page(
    request: Request,
    portal: PortalDep,
    view: enrollment.EnrollmentView,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    scan = view.scan
    assert scan is not None
    context: dict[str, Any] = {
        "view": view,
        "scan": scan,
        "secret_grouped": group_secret(scan.seed),
        "qr": Markup(  # noqa: S704  # nosec B704 - our own SVG, its texts escaped by ElementTree
            qr_svg(scan.otpauth_uri, title=_("QR code to scan with your authenticator app"))
        ),
        "apps": APPS,
        "max_tries": enrollment.MAX_FAILED_TRIES,
        "seconds_left": seconds_left(portal.clock().timestamp()),
        "errors": errors or {},
    }
    return render(request, "enroll/scan.html", context, status_code=status_code, headers=NO_STORE)


@router.post("/enroll/verify")
def verify(
    request: Request,
    portal: PortalDep,
    code1: Annotated[str, Form()] = "",
    code2: Annotated[str, Form()] = "",
) -> Response:
    enrollment_id = current_enrollment(request, portal)
    try:
        enrollment.verify_codes(
            portal,
            enrollment_id=enrollment_id,
            code1=code1,
            code2=code2,
            actor=_actor(request),
        )
    except enrollment.CodeRejected as exc:
        return _with_error(request, portal, enrollment_id, exc.message, 400, field=exc.field)
    except enrollment.EnrollmentExpired:
        return RedirectResponse("/enroll", status_code=303)
    except enrollment.FinishIncomplete as exc:
        return _with_error(request, portal, enrollment_id, exc.message, exc.status)
    except (enrollment.LinkUnusable, enrollment.EnrollmentLocked) as exc:
        return _stopped_answer(request, exc)
    return RedirectResponse("/enroll/done", status_code=303)


def _with_error(
    request: Request,
    portal: PortalDep,
    enrollment_id: str,
    message: str,
    status: int,
    *,
    field: str | None = None,
) -> Response:
    """The enrollment's current page again, with what went wrong on it, after a redirect."""
    try:
        view = enrollment.enrollment_view(portal, enrollment_id=enrollment_id)
    except (enrollment.LinkUnusable, enrollment.EnrollmentLocked) as exc:
        return _stopped_answer(request, exc)
    if view.stage == "scan":
        errors = {field or "_form": message}
        return _answer(
            request, _scan_page(request, portal, view, errors=errors, status_code=status)
        )
    if view.stage == "done":
        return RedirectResponse("/enroll/done", status_code=303)
    context = {"view": view, "error": message}
    page = render(request, "enroll/status.html", context, status_code=status, headers=NO_STORE)
    return _answer(request, page)


@router.post("/enroll/finish")
def finish(request: Request, portal: PortalDep) -> Response:
    enrollment_id = current_enrollment(request, portal)
    try:
        enrollment.finish_enrollment(portal, enrollment_id=enrollment_id, actor=_actor(request))
    except enrollment.FinishIncomplete as exc:
        return _with_error(request, portal, enrollment_id, exc.message, exc.status)
    except enrollment.EnrollmentExpired:
        return RedirectResponse("/enroll", status_code=303)
    except enrollment.LinkUnusable as exc:
        return _stopped_answer(request, exc)
    return RedirectResponse("/enroll/done", status_code=303)


@router.post("/enroll/restart")
def restart(request: Request, portal: PortalDep) -> Response:
    enrollment_id = current_enrollment(request, portal)
    try:
        enrollment.prepare_device(portal, enrollment_id=enrollment_id, actor=_actor(request))
    except (enrollment.LinkUnusable, enrollment.EnrollmentLocked) as exc:
        return _stopped_answer(request, exc)
    except AwsError as exc:
        message = _("Your MFA device could not be created: {problem}").format(problem=exc.message)
        return _with_error(request, portal, enrollment_id, message, exc.status)
    return RedirectResponse("/enroll", status_code=303)


@router.get("/enroll/done")
def done(request: Request, portal: PortalDep) -> Response:
    enrollment_id = current_enrollment(request, portal)
    # The one page whose GET changes something: the temporary password is shown once and
    # then deleted; the URL is reachable only with this enrollment's session cookie.
    try:
        details = enrollment.reveal_done(portal, enrollment_id=enrollment_id)
    except enrollment.EnrollmentExpired:
        return RedirectResponse("/enroll", status_code=303)
    return render(request, "enroll/done.html", {"done": details}, headers=NO_STORE)


@router.get("/enroll/{token}")
def landing(request: Request, portal: PortalDep, token: str) -> Response:
    limited = _rate_limited(request, portal)
    if limited is not None:
        return limited
    try:
        welcome = enrollment.welcome(portal, token=token)
    except (enrollment.LinkUnusable, enrollment.EnrollmentLocked) as exc:
        return _stopped(request, exc)
    return render(
        request,
        "enroll/landing.html",
        {"welcome": welcome, "token": token, "max_tries": enrollment.MAX_FAILED_TRIES},
        headers=NO_STORE,
    )


@router.post("/enroll/{token}")
def start(request: Request, portal: PortalDep, token: str) -> Response:
    # The answers to this form are shown by the landing page's address, where it came from.
    landing_path = request.url.path
    limited = _rate_limited(request, portal)
    if limited is not None:
        return _answer(request, limited, at=landing_path)
    try:
        enrollment_id = enrollment.start_enrollment(portal, token=token, actor=_actor(request))
    except (enrollment.LinkUnusable, enrollment.EnrollmentLocked) as exc:
        return _answer(request, _stopped(request, exc), at=landing_path)
    # A new session id at the exchange; the old cookie id (and its CSRF token) dies.
    new_id = create_session(
        portal, kind="enroll", enrollment_id=enrollment_id, replaces=session_raw_id(request)
    )
    request.state.new_session_raw_id = new_id
    request.state.session_raw_id = new_id  # a page rendered now carries the new CSRF token
    try:
        enrollment.prepare_device(portal, enrollment_id=enrollment_id, actor=_actor(request))
    except (enrollment.LinkUnusable, enrollment.EnrollmentLocked) as exc:
        return _stopped_answer(request, exc)
    except AwsError as exc:
        message = _("Your MFA device could not be created: {problem}").format(problem=exc.message)
        return _with_error(request, portal, enrollment_id, message, exc.status)
    return RedirectResponse("/enroll", status_code=303)

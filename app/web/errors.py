"""One place turns errors into pages (plain sentences) or API JSON; stack traces stay here."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from app.errors import PortalError
from app.i18n import _
from app.web.middleware import redact_path
from app.web.prg import ANSWER_PATH, see_other
from app.web.templating import render

log = logging.getLogger("iam_onboard.errors")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_json(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    # Never a kept page instead (render's database read would block the event loop here).
    return render(
        request, "error.html", {"title": title, "message": message}, status_code=status, kept=False
    )


async def _answer(request: Request, page: Response) -> Response:
    """A form's refusal is shown after a redirect like every answer to a form (app/web/prg.py)."""
    if request.method != "POST":
        return page
    # In a worker thread: keeping the page writes to the database.
    return await run_in_threadpool(see_other, request, page, at=ANSWER_PATH)


def _status_text(status: int) -> tuple[str, str]:
    if status == 404:
        return _("Page not found"), _("There is nothing at this address.")
    if status == 405:
        return _("Not allowed"), _("This page cannot be used that way.")
    if status == 403:
        return _("Not allowed"), _("You are not allowed to do this.")
    if status == 401:
        return _("Sign-in needed"), _("Sign in first.")
    return _("Something went wrong"), _("Please try again.")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PortalError)
    async def portal_error(request: Request, exc: PortalError) -> Response:
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        if _is_api(request):
            return error_json(exc.status, exc.code, exc.message)
        return await _answer(
            request, error_page(request, exc.status, _("That did not work"), exc.message)
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if 300 <= exc.status_code < 400 and exc.headers and "Location" in exc.headers:
            return RedirectResponse(exc.headers["Location"], status_code=exc.status_code)
        title, message = _status_text(exc.status_code)
        if _is_api(request):
            detail = exc.detail if isinstance(exc.detail, str) else message
            code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(
                exc.status_code, "http_error"
            )
            response: Response = error_json(exc.status_code, code, detail)
        else:
            response = error_page(request, exc.status_code, title, message)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = _("Invalid value for {field}: {problem}").format(
            field=where or _("the request"), problem=first.get("msg", "")
        )
        if _is_api(request):
            return error_json(422, "invalid", message)
        return await _answer(request, error_page(request, 400, _("That did not work"), message))

    app.exception_handler(Exception)(unexpected_error)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """The 500 answer: a plain sentence for the person, the stack trace for the server log."""
    # Redacted: the path of a link's landing page is its token.
    log.exception("unhandled error on %s %s", request.method, redact_path(request.url.path))
    title, message = _status_text(500)
    if _is_api(request):
        return error_json(500, "internal_error", message)
    return error_page(request, 500, title, message)


async def csrf_failure(scope: Scope, receive: Receive, send: Send) -> None:
    """The response to a POST whose CSRF token is missing or wrong."""
    request = Request(scope, receive)
    response = error_page(
        request,
        403,
        _("This form has expired"),
        _("Go back, reload the page and try again."),
    )
    await response(scope, receive, send)

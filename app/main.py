"""The FastAPI app factory: middleware, routers, error handlers."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import metrics
from app.aws.errors import AwsError
from app.aws.timing import AwsTime, aws_time
from app.services import housekeeping
from app.services.portal import Portal
from app.web import (
    admin_adopt,
    admin_audit,
    admin_auth,
    admin_invite,
    admin_oidc,
    admin_outbox,
    api,
    api_lifecycle,
    common,
    dashboard,
    enroll,
    lifecycle,
    users,
)
from app.web import metrics as metrics_page
from app.web.errors import csrf_failure, install_error_handlers, unexpected_error
from app.web.middleware import SessionCsrfMiddleware, redact_path
from app.web.templating import STATIC_DIR

log = logging.getLogger("iam_onboard.http")

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
)
# A request id from a proxy in front is kept when it looks like one, else a new one is made.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            given = str(value.decode("latin-1"))
            if _REQUEST_ID.fullmatch(given):
                return given
    return secrets.token_hex(8)


class SecurityHeaders:
    """The security headers (docs/architecture.md, "Security rules") on every response, and
    one log line per request (no tokens).

    Plain ASGI rather than BaseHTTPMiddleware: it adds nothing to a request but the headers.
    """

    def __init__(self, app: ASGIApp, *, https: bool):
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        spent = AwsTime()
        aws_time.set(spent)
        path: str = scope.get("path", "")
        status = 500
        response_started = False
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", _CSP)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
                headers["X-Request-ID"] = request_id
                if path.startswith("/static/"):
                    headers.setdefault("Cache-Control", "public, max-age=3600")
                else:
                    # Pages can show secrets or personal data: nothing is kept by browsers or
                    # proxies.
                    headers.setdefault("Cache-Control", "no-store")
                if self.https:
                    headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_headers)
            except Exception as exc:
                # Starlette answers an unhandled error outside every middleware, so that page
                # would go out without these headers: it is answered (and logged) here instead.
                if response_started:
                    raise
                response = await unexpected_error(Request(scope, receive), exc)
                await response(scope, receive, send_with_headers)
        finally:
            self._log(scope, path, status, started, spent)

    @staticmethod
    def _log(scope: Scope, path: str, status: int, started: float, spent: AwsTime) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        method = scope.get("method", "")
        # The route's template (/enroll/{token}) names the page without its token.
        route = getattr(scope.get("route"), "path", None) or redact_path(path)
        if status == 429:
            metrics.rate_limited(path.strip("/").split("/", 1)[0] or "/")
        state = scope.get("state", {})
        log.info(
            "%s %s %s %.1fms (AWS %d calls, %.1fms)",
            method,
            redact_path(path),
            status,
            duration_ms,
            spent.calls,
            spent.seconds * 1000,
            extra={
                "request_id": state.get("request_id"),
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(duration_ms, 1),
                "aws_calls": spent.calls,
                "aws_ms": round(spent.seconds * 1000, 1),
                "actor": state.get("log_actor"),
            },
        )


def _lifespan(portal: Portal) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    chores = housekeeping.lifespan(portal)  # periodic chores while the server runs

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[None]:
        try:
            async with chores(app):
                yield
        finally:
            metrics.mark_process_dead()  # a worker of `serve --workers N` that stops

    return run


def create_app(portal: Portal) -> FastAPI:
    app = FastAPI(
        title="iam-onboard",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(portal),
    )
    app.state.portal = portal
    settings = portal.settings
    # Added inner first: SecurityHeaders wraps everything, CSRF failures included.
    app.add_middleware(
        SessionCsrfMiddleware,
        secret=settings.secret_key,
        https=settings.https,
        on_csrf_failure=csrf_failure,
    )
    app.add_middleware(SecurityHeaders, https=settings.https)
    # Outermost: the client address every layer (rate limits, audit, logs) sees. Proxy headers
    # count only from the configured proxies; servers run with uvicorn's own handling off.
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # FastAPI tries routes in order, router by router (about 10 µs a route here): the pages
    # of new hires and the API come first, the admin console after. No two routers share a
    # path, so the order changes nothing else.
    app.include_router(enroll.router)
    app.include_router(api.router)
    app.include_router(api_lifecycle.router)
    app.include_router(common.router)
    app.include_router(admin_auth.router)
    app.include_router(admin_oidc.router)
    app.include_router(admin_invite.router)
    app.include_router(admin_outbox.router)
    app.include_router(dashboard.router)
    app.include_router(users.router)
    app.include_router(lifecycle.router)
    app.include_router(admin_adopt.router)
    app.include_router(admin_audit.router)
    app.include_router(metrics_page.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            portal.db.ping()
            checks["database"] = "ok"
        except Exception:  # the reason goes to the server log, not to the prober
            log.exception("readyz: database check failed")
            checks["database"] = "unreachable"
        try:
            portal.iam().caller_identity()
            checks["iam"] = "ok"
        except AwsError as exc:
            log.warning("readyz: IAM check failed: %s", exc.message)
            checks["iam"] = "unreachable"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    return app

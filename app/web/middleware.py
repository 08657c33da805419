"""ASGI middleware: the session cookie, CSRF on every form POST, the request's language; paths
logged without their tokens."""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import i18n
from app.security.csrf import csrf_valid
from app.security.tokens import new_token

log = logging.getLogger("iam_onboard.http")

LANG_COOKIE = "iam_onboard_lang"
MAX_FORM_BYTES = 256 * 1024
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


# Fixed paths under the token-carrying prefixes; anything else there is a token.
_NOT_TOKENS = {"verify", "done", "finish", "restart", "totp"}


def redact_path(path: str) -> str:
    """Paths that carry a token are logged without it."""
    for prefix in ("/enroll/", "/admin/setup/"):
        rest = path[len(prefix) :]
        if path.startswith(prefix) and rest and rest not in _NOT_TOKENS:
            return prefix + "[token]"
    return path


def session_cookie_name(https: bool) -> str:
    # The __Host- prefix pins the cookie to this host, path /, Secure: only over https.
    return "__Host-iam_onboard" if https else "iam_onboard"


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is treated as no cookie
                log.debug("ignored a malformed Cookie header")
    return {k: m.value for k, m in jar.items()}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cookie_header(name: str, value: str, *, https: bool, max_age: int | None = None) -> bytes:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if https:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts).encode("latin-1")


class SessionCsrfMiddleware:
    """Gives every visitor an opaque cookie id and checks `csrf_token` on every form POST.

    The id only becomes a server-side session when someone signs in or starts an
    enrollment (a new id then); before that it only binds the CSRF token.
    Handlers rotate the id by setting `request.state.new_session_raw_id`.
    """

    def __init__(self, app: ASGIApp, *, secret: str, https: bool, on_csrf_failure: Any):
        self.app = app
        self.secret = secret
        self.https = https
        self.cookie = session_cookie_name(https)
        self.on_csrf_failure = on_csrf_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Static files need no visitor id, language or CSRF check (GET only, no page): the
        # security headers still come from SecurityHeaders, which wraps this.
        if scope["type"] != "http" or (
            scope["method"] in SAFE_METHODS and scope.get("path", "").startswith("/static/")
        ):
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        cookie_id = cookies.get(self.cookie)
        fresh = not cookie_id or len(cookie_id) > 100
        raw_id: str = new_token() if fresh or not cookie_id else cookie_id
        state = scope.setdefault("state", {})
        state["session_raw_id"] = raw_id
        if raw_id != cookie_id:
            state["minted_session_raw_id"] = raw_id
        state["session_cookie_name"] = self.cookie
        language = i18n.pick_language(
            cookie=cookies.get(LANG_COOKIE), accept_language=_header(scope, b"accept-language")
        )
        i18n.set_language(language)
        state["language"] = language

        path: str = scope.get("path", "")
        # Every method that may change something, not only POST: a route added later is covered.
        if scope["method"] not in SAFE_METHODS and not path.startswith("/api/"):
            body = await _read_body(receive)
            if body is None or not self._csrf_ok(scope, body, raw_id, fresh):
                await self.on_csrf_failure(scope, receive, send)
                return
            receive = _replay(body, receive)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                new_id = state.get("new_session_raw_id")
                if new_id or fresh:
                    headers.append(
                        (
                            b"set-cookie",
                            cookie_header(self.cookie, new_id or raw_id, https=self.https),
                        )
                    )
                if state.get("set_language"):
                    headers.append(
                        (
                            b"set-cookie",
                            cookie_header(
                                LANG_COOKIE,
                                state["set_language"],
                                https=self.https,
                                max_age=365 * 24 * 3600,
                            ),
                        )
                    )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _csrf_ok(self, scope: Scope, body: bytes, raw_id: str, fresh: bool) -> bool:
        if fresh:
            return False
        content_type = _header(scope, b"content-type") or ""
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return False
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        token = (form.get("csrf_token") or [""])[0]
        return csrf_valid(secret=self.secret, session_id=raw_id, token=token)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, original: Receive) -> Receive:
    """Hand the buffered body to the app, then wait on the real connection (for disconnects)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive

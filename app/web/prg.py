"""Post/Redirect/Get for every form of the portal, its errors included.

A form's answer is never the response to the POST: the page that answers it (the form again
with its errors, or what was done) is rendered, sealed and kept in the visitor's server-side
session, and the POST answers 303 to a GET address. The next GET of that address shows the
kept page once (`render` looks for it); after that the address shows its live page. Back and
Reload therefore never ask to send a form again, and nothing of the answer travels in a URL or
a cookie: the cookie holds only the session id (a visitor without a session gets an anonymous
one, docs/architecture.md "Security rules").

Kept pages can hold secrets (an enrollment link shown once, the MFA key of the scan page), so
they are sealed with the app secret, bound to the session, and deleted when shown.
"""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.security.secretbox import SecretBoxError
from app.security.tokens import hash_token
from app.services.portal import Portal
from app.services.sessions import pop_session_value, put_session_value
from app.web.deps import current_session, session_raw_id

_KEY = "answer"
_PURPOSE = "kept-page"
# The page after the answer to a form whose own address has no page (an error raised by a
# route); see app/web/common.py.
ANSWER_PATH = "/answer"


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


def see_other(request: Request, page: Response, *, at: str) -> RedirectResponse:
    """Keep `page` for the next GET of `at` (a local path, with or without a query) and
    answer 303 to it."""
    portal = _portal(request)
    # A route that ended the session (a lockout) gave the visitor a new id: the page goes there.
    raw_id = getattr(request.state, "new_session_raw_id", None) or session_raw_id(request)
    body = bytes(page.body).decode("utf-8")
    kept = json.dumps({"path": at.split("?", 1)[0], "status": page.status_code, "body": body})
    sealed = portal.secret_box(_PURPOSE).encrypt(kept, bound_to=hash_token(raw_id))
    put_session_value(portal, raw_id, _KEY, sealed)
    return RedirectResponse(at, status_code=303)


def kept_page(request: Request) -> HTMLResponse | None:
    """The page kept for this GET, once; None when there is none (or it was for elsewhere)."""
    if request.method != "GET":
        return None
    session = current_session(request, _portal(request))  # cached: most pages read it already
    if session is None or _KEY not in session.data:
        return None
    portal = _portal(request)
    raw_id = session_raw_id(request)
    sealed = pop_session_value(portal, raw_id, _KEY)
    if not sealed:
        return None
    try:
        kept = json.loads(portal.secret_box(_PURPOSE).decrypt(sealed, bound_to=hash_token(raw_id)))
    except (
        SecretBoxError,
        ValueError,
    ):  # sealed under another secret or session: as good as absent
        return None
    if kept.get("path") != request.url.path:
        return None  # the visitor went elsewhere: the answer is stale
    return HTMLResponse(
        kept["body"], status_code=int(kept["status"]), headers={"Cache-Control": "no-store"}
    )

"""Jinja2 rendering: the base layout, translations, the CSRF token and the language switcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse

from app import i18n
from app.security.csrf import csrf_token_for
from app.services.record_text import record_text
from app.services.statuses import state_label, status_label, status_tone
from app.template_env import new_environment
from app.web.local_time import local_time
from app.web.prg import kept_page
from app.web.text_breaks import breakable

# Package data: it ships inside the wheel, beside the code.
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

env = new_environment()
env.globals["LANGUAGES"] = i18n.LANGUAGES
# The favicon inside each page (CSP img-src allows data:): a first visit makes one request fewer
# before the page is whole. /favicon.ico serves the same file to whoever asks.
env.globals["FAVICON"] = "data:image/svg+xml," + quote(
    (STATIC_DIR / "favicon.svg").read_text().strip()
)
# Stored values shown in the reader's language: statuses, states and the portal's own records.
env.globals["status_label"] = status_label
env.globals["state_label"] = state_label
env.globals["status_tone"] = status_tone  # the colour of a status pill
env.filters["record"] = record_text
# Times in the reader's zone (UTC in the markup): {{ event.at | when }}, {{ t | when("time") }}.
env.filters["when"] = local_time
# ARNs, action names and addresses wrap after / : - . , never inside a word.
env.filters["breakable"] = breakable


def csrf_token(request: Request) -> str:
    secret = request.app.state.portal.settings.secret_key
    session_id = getattr(request.state, "session_raw_id", None)
    return csrf_token_for(secret=secret, session_id=session_id) if session_id else ""


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    kept: bool = True,
) -> HTMLResponse:
    """Render a page; every page gets the request, its CSRF token and the current language.

    A GET first shows the page kept for it by the answer to a form (app/web/prg.py), once.
    """
    page = kept_page(request) if kept else None
    if page is not None:
        return page
    values = {
        "request": request,
        "csrf_token": csrf_token(request),
        "lang": i18n.current_language(),
        "path": request.url.path,
        "flash": getattr(request.state, "flash", None),
        # For an admin who signs in with the identity provider: how step-up works for them.
        "step_up_sso": getattr(request.state, "step_up_sso", None),
    }
    values.update(context or {})
    html = env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=headers)

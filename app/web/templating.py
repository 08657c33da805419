"""Jinja2 rendering: the base layout, translations, the CSRF token and the language switcher."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from app import i18n
from app.security.csrf import csrf_token_for
from app.services.record_text import record_text
from app.services.statuses import state_label, status_label
from app.template_env import new_environment
from app.web.prg import kept_page

# Package data: it ships inside the wheel, beside the code.
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

env = new_environment()
env.globals["LANGUAGES"] = i18n.LANGUAGES
# Stored values shown in the reader's language: statuses, states and the portal's own records.
env.globals["status_label"] = status_label
env.globals["state_label"] = state_label
env.filters["record"] = record_text


def breakable(text: object) -> Markup:
    """The text escaped, with a line-break chance (`<wbr>`) after each / : - . in it: an ARN,
    an address or a command wraps there on a phone, never inside a word."""
    return Markup(_BREAK_AFTER.sub(r"\1<wbr>", str(escape(str(text)))))  # noqa: S704  # nosec B704 - escaped first


_BREAK_AFTER = re.compile(r"([/:.\-]+)(?=.)")
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
    }
    values.update(context or {})
    html = env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=headers)

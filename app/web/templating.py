"""Jinja2 rendering: the base layout, translations, the CSRF token and the language switcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app import i18n
from app.security.csrf import csrf_token_for
from app.services.record_text import record_text
from app.services.statuses import state_label, status_label

# Package data: they ship inside the wheel, beside the code.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"

env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html", "xml", "txt"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
    # Templates ship with the code: no stat() of every template on every render.
    auto_reload=False,
)
env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
env.globals["LANGUAGES"] = i18n.LANGUAGES
# Stored values shown in the reader's language: statuses, states and the portal's own records.
env.globals["status_label"] = status_label
env.globals["state_label"] = state_label
env.filters["record"] = record_text


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
) -> HTMLResponse:
    """Render a page; every page gets the request, its CSRF token and the current language."""
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


def render_text(template: str, context: dict[str, Any]) -> str:
    """Render a template outside a request (mail bodies)."""
    return env.get_template(template).render(context)

"""Pages that belong to no area: the front page and the language switcher."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from app import i18n
from app.web.prg import ANSWER_PATH, kept_page
from app.web.templating import STATIC_DIR, render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request) -> Response:
    return render(request, "home.html")


@router.get(ANSWER_PATH)
def answer(request: Request) -> Response:
    """The answer to a form that has no page of its own (what was done, or why not), once
    (app/web/prg.py); after that, the start page."""
    kept = kept_page(request)
    if kept is not None:
        return kept
    session = getattr(request.state, "web_session", None)
    kind = session.kind if session is not None else None
    home = {"admin": "/admin/dashboard", "enroll": "/enroll"}.get(kind or "", "/")
    return RedirectResponse(home, status_code=303)


@router.get("/favicon.ico")
def favicon() -> Response:
    """Whoever asks for /favicon.ico (a JSON answer opened in a browser, a bookmark, a feed
    reader) gets the SVG that pages carry inline, not a 404; like every path outside /static it
    is sent with no-store (tests/security/test_headers.py)."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


def safe_next(next_path: str | None) -> str:
    """Only local paths: a redirect target from a form must never leave the portal."""
    if not next_path or not next_path.startswith("/") or next_path.startswith("//"):
        return "/"
    if "\\" in next_path or any(ord(ch) < 32 for ch in next_path):
        return "/"
    return next_path


@router.post("/language")
def switch_language(
    request: Request, language: str = Form(...), next: str | None = Form(None)
) -> Response:
    if language in i18n.LANGUAGES:
        request.state.set_language = language
    return RedirectResponse(safe_next(next), status_code=303)

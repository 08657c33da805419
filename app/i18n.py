"""Translations: every text a person reads goes through `_` (English and Korean).

The current language lives in a context variable, set per request by the web layer (from the
language switcher's cookie or Accept-Language) and per command by the CLI (from LANG).
"""

from __future__ import annotations

import gettext as _gettext
import io
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGES = {"en": "English", "ko": "한국어"}
DEFAULT_LANGUAGE = "en"

_current: ContextVar[str] = ContextVar("iam_onboard_language", default=DEFAULT_LANGUAGE)


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """The catalog for `language`, compiled in memory from its .po file (no build step)."""
    path = catalog_path(language)
    if language == DEFAULT_LANGUAGE or not path.exists():
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


def set_language(language: str) -> None:
    _current.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def current_language() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks a text for the catalog without translating it; `_` translates it where it is shown."""
    return message


def pick_language(*, cookie: str | None, accept_language: str | None) -> str:
    """The switcher's choice first, then the browser's preference order, then English."""
    if cookie in LANGUAGES:
        return str(cookie)
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        quality = 1.0
        for param in pieces[1:]:
            name, _sep, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag:
            ranked.append((-quality, index, tag.split("-")[0]))
    for _q, _i, base in sorted(ranked):
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE


def language_from_env(lang: str | None) -> str:
    """For the CLI: LANG=ko_KR.UTF-8 gives Korean."""
    base = (lang or "").split(".")[0].split("_")[0].lower()
    return base if base in LANGUAGES else DEFAULT_LANGUAGE

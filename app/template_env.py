"""The template folder and the Jinja2 environment that pages (app.web.templating) and mails
(app.services.notifications) are each rendered in: the same settings, the same translations."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from app import i18n

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"  # package data


def new_environment() -> Environment:
    """A fresh environment over the template folder, translating through app.i18n."""
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
    return env

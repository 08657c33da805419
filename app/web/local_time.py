"""Times on pages: UTC in the markup, turned into the reader's own zone by app.js.

`<time datetime="...Z" data-local="datetime">2026-12-03 18:33 UTC</time>`: without script (and
in every export) the reader gets UTC, said as such; with it, the browser's local time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup

_FORMATS = {
    "datetime": "%Y-%m-%d %H:%M",
    "seconds": "%Y-%m-%d %H:%M:%S",
    "time": "%H:%M",
    "date": "%Y-%m-%d",
}


def local_time(value: datetime | None, kind: str = "datetime") -> Markup:
    """A <time> element for `value` (an aware datetime); a muted dash when there is none."""
    if value is None:
        return Markup('<span class="muted">—</span>')
    utc = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    text = utc.strftime(_FORMATS.get(kind, _FORMATS["datetime"]))
    if kind != "date":
        text += " UTC"
    # A literal template: format() escapes each value it puts in.
    template = '<time datetime="{stamp}" data-local="{kind}" title="{full}">{text}</time>'
    return Markup(template).format(  # noqa: S704  # nosec B704 - values escaped by format()
        stamp=utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        kind=kind,
        full=utc.strftime("%Y-%m-%d %H:%M:%S UTC"),
        text=text,
    )

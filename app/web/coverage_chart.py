"""The dashboard's MFA coverage chart: inline SVG drawn on the server (no script, no CDN).

Colours come from classes in app.css (the CSP allows no inline styles); the chart names itself
with <title> and says what it shows in <desc>, so a screen reader gets the same facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

from app.i18n import ngettext
from app.services.directory.headline import CoveragePoint

WIDTH, HEIGHT = 600, 170
LEFT, RIGHT, TOP, BOTTOM = 70, 12, 14, 34  # room for the axis labels
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM
MAX_DOTS = 40  # more dots than this make a smudge; the line still has every point


def _day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")


def _percent(value: float) -> str:
    return f"{round(value * 100)}%"


def _xy(point: CoveragePoint, start: float, span: float) -> tuple[float, float]:
    # A single refresh sits in the middle, its date under it.
    x = LEFT + (PLOT_W * (point.at.timestamp() - start) / span if span else PLOT_W / 2)
    y = TOP + PLOT_H * (1 - (point.coverage or 0.0))
    return round(x, 1), round(y, 1)


def coverage_svg(points: Sequence[CoveragePoint], *, days: int) -> Markup:
    """The chart, or an empty Markup when no refresh has counted a console user yet."""
    known = [p for p in points if p.coverage is not None]
    if not known:
        return Markup("")
    first, last = known[0], known[-1]
    start, end = first.at.timestamp(), last.at.timestamp()
    span = end - start
    title = ngettext(
        "MFA coverage of console users, last %(num)d day",
        "MFA coverage of console users, last %(num)d days",
        days,
    ) % {"num": days}
    desc = ngettext(
        "%(num)d refresh: from %(first)s on %(start)s to %(last)s on %(end)s.",
        "%(num)d refreshes: from %(first)s on %(start)s to %(last)s on %(end)s.",
        len(known),
    ) % {
        "num": len(known),
        "first": _percent(first.coverage or 0.0),
        "start": _day(first.at),
        "last": _percent(last.coverage or 0.0),
        "end": _day(last.at),
    }
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="coverage-title coverage-desc" preserveAspectRatio="xMidYMid meet">',
        f'<title id="coverage-title">{escape(title)}</title>',
        f'<desc id="coverage-desc">{escape(desc)}</desc>',
    ]
    for share in (0.0, 0.5, 1.0):
        y = TOP + PLOT_H * (1 - share)
        parts.append(
            f'<line class="chart-grid" x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>'
        )
        label = _percent(share)
        parts.append(
            f'<text class="chart-label" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{label}</text>'
        )
    xy = [_xy(p, start, span) for p in known]
    if len(xy) > 1:
        line = " ".join(f"{x},{y}" for x, y in xy)
        area = f"{xy[0][0]},{TOP + PLOT_H} {line} {xy[-1][0]},{TOP + PLOT_H}"
        parts.append(f'<polygon class="chart-area" points="{area}"/>')
        parts.append(f'<polyline class="chart-line" points="{line}"/>')
    for (x, y), point in zip(xy[-MAX_DOTS:], known[-MAX_DOTS:], strict=True):
        tip = f"{_day(point.at)}: {_percent(point.coverage or 0.0)}"
        parts.append(
            f'<circle class="chart-dot" cx="{x}" cy="{y}" r="3.5"><title>{tip}</title></circle>'
        )
    base = HEIGHT - 8
    if not span:
        parts.append(
            f'<text class="chart-label" x="{xy[0][0]}" y="{base}" text-anchor="middle">'
            f"{_day(first.at)}</text>"
        )
    else:
        parts.append(f'<text class="chart-label" x="{LEFT}" y="{base}">{_day(first.at)}</text>')
        parts.append(
            f'<text class="chart-label" x="{WIDTH - RIGHT}" y="{base}" text-anchor="end">'
            f"{_day(last.at)}</text>"
        )
    parts.append("</svg>")
    # Numbers and dates we format ourselves; the two translated texts are escaped above.
    return Markup("".join(parts))  # noqa: S704  # nosec B704 - our own SVG

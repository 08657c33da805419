"""The admin dashboard: every IAM user with a status, search, filter, pages, CSV, refresh."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from app.errors import PortalError, ValidationError
from app.i18n import _
from app.services import directory, statuses
from app.services.directory import DirectoryRow
from app.services.directory.headline import SERIES_DAYS, coverage_series, headline
from app.web.coverage_chart import coverage_svg
from app.web.deps import AdminDep, PortalDep
from app.web.prg import see_other
from app.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "user_name",
    "status",
    "email",
    "invited_by",
    "invited_at",
    "enrolled_at",
    "virtual_mfa_devices",
    "mfa_of_other_kind",
    "last_console_sign_in",
    "in_mfa_group",
    "console_password",
)

QueryText = Annotated[str, Query(max_length=200)]


def _url(path: str, **params: str | int) -> str:
    kept = {k: v for k, v in params.items() if v != "" and not (k == "page" and v == 1)}
    return path + ("?" + urlencode(kept) if kept else "")


def _notice(key: str | None) -> str | None:
    # Fixed keys only: a message taken from the query string would put words in our mouth.
    return {"refreshed": _("The list was refreshed from AWS.")}.get(key or "")


def _render(
    request: Request,
    portal: PortalDep,
    *,
    q: str,
    status: str,
    page: int,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        listing = directory.list_users(
            portal, status=status or None, query=q or None, page=page, per_page=PER_PAGE
        )
    except ValidationError as exc:  # an unknown status in a hand-edited address
        error, status_code, status = exc.message, 400, ""
        listing = directory.list_users(portal, query=q or None, page=page, per_page=PER_PAGE)
    current = statuses.parse_status(status) if status else ""
    status = statuses.status_slug(current) if current else ""
    points = coverage_series(portal, days=SERIES_DAYS)
    links = {
        "all": _url("/admin/dashboard", q=q),
        "status": {
            s: _url("/admin/dashboard", q=q, status=statuses.status_slug(s))
            for s in statuses.STATUSES
        },
        "prev": _url("/admin/dashboard", q=q, status=status, page=listing.page - 1),
        "next": _url("/admin/dashboard", q=q, status=status, page=listing.page + 1),
        "csv": _url("/admin/dashboard.csv", q=q, status=status),
    }
    return render(
        request,
        "admin/dashboard.html",
        {
            "listing": listing,
            "snapshot": listing.snapshot,
            "q": q,
            "status": current,
            "statuses": statuses.STATUSES,
            "status_label": statuses.status_label,
            "status_slug": statuses.status_slug,
            "headline": headline(portal),
            "chart": coverage_svg(points, days=SERIES_DAYS),
            "chart_points": sum(1 for p in points if p.coverage is not None),
            "links": links,
            "notice": notice,
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/admin/dashboard")
def dashboard(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    q: QueryText = "",
    status: QueryText = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    done: QueryText = "",
) -> Response:
    return _render(request, portal, q=q, status=status, page=page, notice=_notice(done))


@router.post("/admin/dashboard/refresh")
def refresh(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    q: Annotated[str, Form(max_length=200)] = "",
    status: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        directory.refresh_directory(portal, actor=admin.actor)
    except PortalError as exc:
        page = _render(
            request, portal, q=q, status=status, page=1, error=exc.message, status_code=exc.status
        )
        return see_other(request, page, at=_url("/admin/dashboard", q=q, status=status))
    target = _url("/admin/dashboard", q=q, status=status, done="refreshed")
    return RedirectResponse(target, status_code=303)


def _cell(value: str | int | bool | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text(rows: list[DirectoryRow]) -> str:
    """The rows as CSV, each cell safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        values = (
            r.user_name,
            r.status,
            r.email,
            r.invited_by,
            r.invited_at,
            r.enrolled_at,
            r.mfa_devices,
            r.other_mfa,
            r.last_console_sign_in,
            r.in_mfa_group,
            r.has_password,
        )
        writer.writerow([_cell(v) for v in values])
    return out.getvalue()


@router.get("/admin/dashboard.csv")
def dashboard_csv(
    portal: PortalDep, admin: AdminDep, q: QueryText = "", status: QueryText = ""
) -> Response:
    rows = directory.export_rows(portal, status=status or None, query=q or None)
    stamp = portal.clock().strftime("%Y%m%d-%H%M")
    return Response(
        csv_text(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="iam-users-{stamp}.csv"'},
    )

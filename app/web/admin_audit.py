"""The audit log page: filters, pages, and the same selection as CSV or JSON Lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.errors import ValidationError
from app.i18n import _
from app.services import audit
from app.web.deps import AdminDep, PortalDep
from app.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 100
QueryText = Annotated[str, Query(max_length=320)]


def _parse_time(value: str, *, field: str, end_of_day: bool) -> datetime | None:
    """YYYY-MM-DD (a whole day, UTC) or an ISO date and time; `until` takes the day in."""
    value = value.strip()
    if not value:
        return None
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) if end_of_day else day
        parsed = datetime.fromisoformat(value)
        # In UTC now: 0001-01-01T00:00+14:00 is before the first day a datetime can hold.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # 9999-12-31 has no next day to end on
        raise ValidationError(
            _("Give a date as YYYY-MM-DD (UTC), or a date and time."), field=field
        ) from None


async def _filter_values(
    actor: QueryText = "",
    action: QueryText = "",
    user: QueryText = "",
    since: QueryText = "",
    until: QueryText = "",
) -> dict[str, str]:
    """The filter fields as typed, shared by the page and both exports."""
    return {"actor": actor, "action": action, "user": user, "since": since, "until": until}


FilterValues = Annotated[dict[str, str], Depends(_filter_values)]


class _Filters:
    def __init__(self, *, actor: str, action: str, user: str, since: str, until: str):
        self.values = {"actor": actor, "action": action, "user": user, "since": since}
        self.values["until"] = until
        self.since = _parse_time(since, field="since", end_of_day=False)
        self.until = _parse_time(until, field="until", end_of_day=True)

    def query(self, **extra: str | int) -> str:
        kept = {k: v for k, v in {**self.values, **extra}.items() if v not in ("", 1)}
        return "?" + urlencode(kept) if kept else ""

    def events(self, portal: PortalDep, *, page: int, per_page: int | None) -> audit.EventPage:
        return audit.list_events(
            portal,
            actor=self.values["actor"] or None,
            action=self.values["action"] or None,
            user=self.values["user"] or None,
            since=self.since,
            until=self.until,
            page=page,
            per_page=per_page,
        )


@router.get("/admin/audit")
def audit_page(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    values: FilterValues,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    try:
        filters = _Filters(**values)
    except ValidationError as exc:
        return render(
            request,
            "admin/audit.html",
            {"values": values, "errors": {exc.field or "_form": exc.message}, "listing": None},
            status_code=400,
        )
    listing = filters.events(portal, page=page, per_page=PER_PAGE)
    pages = max(1, -(-listing.total // PER_PAGE))
    return render(
        request,
        "admin/audit.html",
        {
            "values": values,
            "errors": {},
            "listing": listing,
            "pages": pages,
            "links": {
                "prev": "/admin/audit" + filters.query(page=page - 1),
                "next": "/admin/audit" + filters.query(page=page + 1),
                "csv": "/admin/audit.csv" + filters.query(),
                "jsonl": "/admin/audit.jsonl" + filters.query(),
            },
        },
    )


def _export(portal: PortalDep, filters: _Filters, *, kind: str) -> Response:
    events = filters.events(portal, page=1, per_page=None).events
    stamp = portal.clock().strftime("%Y%m%d-%H%M")
    if kind == "csv":
        body, media_type = audit.audit_csv(events), "text/csv; charset=utf-8"
    else:
        body, media_type = audit.audit_jsonl(events), "application/jsonl; charset=utf-8"
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{kind}"'},
    )


@router.get("/admin/audit.csv")
def audit_csv(portal: PortalDep, admin: AdminDep, values: FilterValues) -> Response:
    return _export(portal, _Filters(**values), kind="csv")


@router.get("/admin/audit.jsonl")
def audit_jsonl(portal: PortalDep, admin: AdminDep, values: FilterValues) -> Response:
    return _export(portal, _Filters(**values), kind="jsonl")

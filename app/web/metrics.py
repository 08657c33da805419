"""GET /metrics: Prometheus's text format, for a scraper holding IAM_ONBOARD_METRICS_TOKEN.

Not there at all (404) unless the token is set; anything but `Authorization: Bearer <token>`
gets 401. The counters live in app/metrics.py; the gauge of locked enrollments is read from the
database at scrape time, so every worker and replica reports the same number.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app import metrics
from app.services.invitations import locked_count
from app.services.portal import Portal
from app.web.deps import PortalDep

router = APIRouter(include_in_schema=False)


class _DatabaseGauges:
    """A prometheus-client collector (collect() only) over the shared database."""

    def __init__(self, portal: Portal):
        self.portal = portal

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily(
            "iam_onboard_locked_enrollments",
            "Enrollments locked after too many wrong codes, waiting for a new link.",
            value=locked_count(self.portal),
        )


def _authorized(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    # Constant time: the comparison tells nothing about how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode("utf-8"), token.encode("utf-8")
    )


@router.get("/metrics")
def metrics_page(request: Request, portal: PortalDep) -> Response:
    token = portal.settings.metrics_token
    if not token:
        return Response("Not Found", status_code=404, media_type="text/plain")
    if not _authorized(request, token):
        return Response(
            "Unauthorized",
            status_code=401,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body, content_type = metrics.render(_DatabaseGauges(portal))
    return Response(body, media_type=content_type)

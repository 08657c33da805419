"""One user's page: IAM facts read live, the invitation and enrollment, the audit timeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.services import directory, statuses
from app.services.lifecycle import plans
from app.web.deps import AdminDep, PortalDep
from app.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/admin/users/{name}")
def user_page(request: Request, portal: PortalDep, admin: AdminDep, name: str) -> Response:
    detail = directory.user_detail(portal, name)
    return render(
        request,
        "admin/user.html",
        {
            "detail": detail,
            "actions": plans.user_actions(detail),  # for the actions partial
            "status_label": statuses.status_label,
            "mfa_group": portal.settings.mfa_group,
        },
    )

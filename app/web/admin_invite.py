"""The invite page: create the IAM user in the MFA group, mail the link, show it once."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.errors import Conflict, PortalError, ValidationError
from app.services.invitations import invite_form_errors, invite_user
from app.services.notifications import MailDelivery, send_invite_mail
from app.web.deps import AdminDep, PortalDep
from app.web.prg import ANSWER_PATH, see_other
from app.web.templating import render

log = logging.getLogger("iam_onboard.web")
router = APIRouter(include_in_schema=False)


def _form_page(
    request: Request,
    portal: PortalDep,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "admin/invite.html",
        {
            "values": values or {"user_name": "", "email": "", "groups": [], "note": ""},
            "errors": errors or {},
            "assignable_groups": portal.settings.assignable_groups,
            "ttl_hours": portal.settings.invite_ttl_hours,
        },
        status_code=status_code,
    )


@router.get("/admin/invite")
def invite_page(request: Request, portal: PortalDep, admin: AdminDep) -> Response:
    return _form_page(request, portal)


@router.post("/admin/invite")
def invite(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    user_name: str = Form(""),
    email: str = Form(""),
    groups: Annotated[list[str] | None, Form()] = None,
    note: str = Form(""),
) -> Response:
    groups = groups or []
    values = {"user_name": user_name, "email": email, "groups": groups, "note": note}
    try:
        result = invite_user(
            portal,
            user_name=user_name,
            email=email,
            extra_groups=groups,
            note=note,
            actor=admin.actor,
        )
    except ValidationError as exc:
        # Every field's problem at once, not one per submit.
        errors = invite_form_errors(
            portal, user_name=user_name, email=email, extra_groups=groups
        ) or {exc.field or "_form": exc.message}
        page = _form_page(request, portal, values=values, errors=errors, status_code=400)
        return see_other(request, page, at="/admin/invite")
    except Conflict as exc:
        errors = {"user_name": exc.message}
        page = _form_page(request, portal, values=values, errors=errors, status_code=400)
        return see_other(request, page, at="/admin/invite")
    except PortalError as exc:  # AWS said no, or is unreachable: nothing to show but the reason
        status = exc.status if 400 <= exc.status < 600 else 400
        page = _form_page(
            request, portal, values=values, errors={"_form": exc.message}, status_code=status
        )
        return see_other(request, page, at="/admin/invite")
    delivery: MailDelivery | None
    try:
        delivery = send_invite_mail(portal, result=result)
    except Exception:  # the user exists and the link is shown only now: never lose the page
        log.exception("the invite mail for %s could not be written", result.user_name)
        delivery = None
    # Shown once by the GET after the redirect, sealed in the session until then: the link
    # never sits in a URL.
    page = render(request, "admin/invite_done.html", {"result": result, "delivery": delivery})
    return see_other(request, page, at=ANSWER_PATH)

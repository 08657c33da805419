"""Existing IAM users in the admin console: send an enrollment link (adopting the user when the
portal does not manage it yet) and change a managed user's contact email.

Both hand someone a way into an existing account, so both ask for a fresh TOTP code (step-up).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.errors import NotFound, PortalError, ValidationError
from app.i18n import _
from app.services.lifecycle import adoption, contacts, plans
from app.web.deps import AdminDep, PortalDep
from app.web.lifecycle import (
    FormText,
    done_page,
    link_page,
    refusal_status,
    step_up,
    user_page,
)
from app.web.prg import see_other
from app.web.templating import render

router = APIRouter(include_in_schema=False)


# -- existing IAM users -------------------------------------------------------------------------
def _send_link_page(
    request: Request,
    portal: PortalDep,
    name: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    plan = plans.send_link_plan(portal, user_name=name)
    defaults = {
        "email": plan.email,
        "enforce": "now",
        "deadline": "",
        "replace_login_profile": False,
        "groups": [],
    }
    return render(
        request,
        "admin/send_link.html",
        {
            "plan": plan,
            "values": values or defaults,
            "errors": errors or {},
            "assignable_groups": portal.settings.assignable_groups,
            "mfa_group": portal.settings.mfa_group,
            # A deadline is the start of a day (UTC): today's has passed already.
            "first_day": (portal.clock() + timedelta(days=1)).date().isoformat(),
        },
        status_code=status_code,
    )


def _parse_deadline(enforce: str, deadline: str) -> datetime | None:
    if enforce != "deadline":
        return None
    if not deadline.strip():
        raise ValidationError(_("Choose the date by which MFA is required."), field="deadline")
    try:
        day = datetime.strptime(deadline.strip(), "%Y-%m-%d")
    except ValueError:
        raise ValidationError(
            _("Give the deadline as a date (YYYY-MM-DD)."), field="deadline"
        ) from None
    return day.replace(tzinfo=UTC)


@router.get("/admin/users/{name}/send-link")
def sendlink_page(request: Request, portal: PortalDep, admin: AdminDep, name: str) -> Response:
    return _send_link_page(request, portal, name)


@router.post("/admin/users/{name}/send-link")
def send_link(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    name: str,
    email: FormText = "",
    enforce: FormText = "now",
    deadline: FormText = "",
    replace_login_profile: FormText = "",
    groups: Annotated[list[str] | None, Form()] = None,
    code: FormText = "",
) -> Response:
    values = {
        "email": email,
        "enforce": "deadline" if enforce == "deadline" else "now",
        "deadline": deadline,
        "replace_login_profile": bool(replace_login_profile),
        "groups": groups or [],
    }
    here = request.url.path
    try:
        when = _parse_deadline(enforce, deadline)
    except ValidationError as exc:  # the form first: a code is spent only on a whole request
        errors = {exc.field or "_form": exc.message}
        page = _send_link_page(request, portal, name, values=values, errors=errors, status_code=400)
        return see_other(request, page, at=here)
    # A link for an existing user is a way into that account: a fresh code before it is made.
    problem = step_up(request, portal, admin, code, f"send an enrollment link to {name}")
    if problem is not None:
        page = _send_link_page(
            request, portal, name, values=values, errors={"code": problem}, status_code=400
        )
        return see_other(request, page, at=here)
    try:
        result = adoption.invite_existing_user(
            portal,
            user_name=name,
            email=email,
            deadline=when,
            replace_login_profile=bool(replace_login_profile),
            extra_groups=groups or [],
            actor=admin.actor,
        )
    except NotFound:
        raise
    except ValidationError as exc:
        errors = {exc.field or "_form": exc.message}
        page = _send_link_page(request, portal, name, values=values, errors=errors, status_code=400)
        return see_other(request, page, at=here)
    except PortalError as exc:
        page = _send_link_page(
            request,
            portal,
            name,
            values=values,
            errors={"_form": exc.message},
            status_code=refusal_status(exc),
        )
        return see_other(request, page, at=here)
    if result.enforce_at is not None:
        enforced = _(
            "{name} joins the MFA group when it enrolls, or on {when} UTC, whichever comes first."
        ).format(name=result.user_name, when=f"{result.enforce_at:%Y-%m-%d %H:%M}")
    else:
        enforced = _("{name} is in the MFA group now.").format(name=result.user_name)
    return link_page(
        request,
        portal,
        result,
        headline=_("Enrollment link for {name}").format(name=result.user_name),
        done=[enforced, _("No new IAM user was created.")],
    )


# -- contact email ------------------------------------------------------------------------------
@router.post("/admin/users/{name}/email")
def change_email(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    name: str,
    email: FormText = "",
    email_code: FormText = "",
) -> Response:
    # `email_code`, not `code`: the user page holds other forms with a code field.
    problem = step_up(request, portal, admin, email_code, f"change the email of {name}")
    if problem is not None:
        return user_page(request, portal, name, errors={"email_code": problem}, status_code=400)
    try:
        user_name = contacts.change_email(portal, user_name=name, email=email, actor=admin.actor)
    except NotFound:
        raise
    except PortalError as exc:
        return user_page(
            request, portal, name, errors={"email": exc.message}, status_code=refusal_status(exc)
        )
    return done_page(
        request,
        user_name=user_name,
        headline=_("Email of {name} changed").format(name=user_name),
        done=[
            _("Links for {name} now go to {email}, a waiting invitation's too.").format(
                name=user_name, email=email.strip()
            )
        ],
    )

"""The lifecycle in the admin console: resend, revoke, lost device, offboard (sending a link to
an existing user and its contact email: app/web/admin_adopt.py).

Everything that hands someone a way into an existing account (reset, send a link / adopt,
revoke-with-delete, offboard, changing the email) asks for a fresh portal TOTP code (step-up).
A new link is shown once, by the GET after the POST's redirect (sealed in the session until
then, app/web/prg.py): it never sits in a URL.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.errors import Conflict, NotFound, PortalError, ValidationError
from app.i18n import _
from app.security.tokens import new_token
from app.services import admins, directory, statuses
from app.services.admins import sso
from app.services.invitations import InviteResult
from app.services.lifecycle import lost_device, offboarding, plans, waiting
from app.services.lifecycle.links import LinkResult
from app.services.notifications import MailDelivery, send_invite_mail
from app.services.sessions import end_session, update_session_data
from app.web.deps import AdminContext, AdminDep, PortalDep, session_raw_id
from app.web.prg import ANSWER_PATH, see_other
from app.web.templating import render

log = logging.getLogger("iam_onboard.web")
router = APIRouter(include_in_schema=False)

FormText = Annotated[str, Form(max_length=320)]


def refusal_status(exc: PortalError) -> int:
    """A refusal of the portal's own is a 400 like any form error; AWS trouble keeps its own."""
    if isinstance(exc, (Conflict, ValidationError)):
        return 400
    return exc.status if 400 <= exc.status < 600 else 400


def step_up(
    request: Request, portal: PortalDep, admin: AdminContext, code: str, purpose: str
) -> str | None:
    """None when the code is good, else the message for the code field.

    An admin who signs in with the identity provider may instead have just signed in there
    again (app/web/admin_oidc.py): that fresh login covers one action, within minutes.
    """
    session = getattr(request.state, "web_session", None)
    if portal.settings.sso and session is not None and session.data.get("sso") is True:
        has_totp = sso.has_totp(portal, admin.admin_id)
        if not code.strip() or not has_totp:
            if sso.use_step_up(
                portal,
                admin_id=admin.admin_id,
                email=admin.email,
                confirmed_at=sso.confirmed_at(session.data),
                purpose=purpose,
                source_ip=admin.actor.source_ip,
            ):
                update_session_data(portal, session_raw_id(request), **{sso.STEP_UP_AT: None})
                return None
            if not has_totp:
                return _("Confirm it is you at {provider} first.").format(
                    provider=sso.provider_name(portal)
                )
    try:
        admins.verify_step_up(
            portal,
            admin_id=admin.admin_id,
            code=code,
            source_ip=admin.actor.source_ip,
            purpose=purpose,
        )
    except admins.AccountLocked:
        # Locked by wrong codes: this session ends too, so guessing cannot go on from it.
        end_session(portal, session_raw_id(request))
        request.state.new_session_raw_id = new_token()
        request.state.session_raw_id = request.state.new_session_raw_id  # the page's CSRF token
        raise
    except admins.SignInRefused as exc:
        return exc.message
    return None


def _deliver(portal: PortalDep, result: LinkResult) -> tuple[MailDelivery | None, bool]:
    """The invitation mail when lifecycle did not mail the link; (delivery, mail failed)."""
    if result.mailed:
        return None, False
    invite = InviteResult(
        invitation_id=result.invitation_id,
        user_name=result.user_name,
        email=result.email,
        link=result.link,
        expires_at=result.expires_at,
    )
    try:
        return send_invite_mail(portal, result=invite), False
    except Exception:  # the link is shown only now: never lose the page over a mail
        log.exception("the enrollment mail for %s could not be written", result.user_name)
        return None, True


def link_page(
    request: Request, portal: PortalDep, result: LinkResult, *, headline: str, done: list[str]
) -> Response:
    delivery, mail_failed = _deliver(portal, result)
    page = render(
        request,
        "admin/lifecycle_link.html",
        {
            "result": result,
            "headline": headline,
            "done": done,
            "delivery": delivery,
            "mail_failed": mail_failed,
            "smtp": bool(portal.settings.smtp_url),
        },
    )
    return see_other(request, page, at=ANSWER_PATH)


def done_page(
    request: Request,
    *,
    user_name: str,
    headline: str,
    done: list[str],
    removed: list[str] | None = None,
    user_page: bool = True,
) -> Response:
    page = render(
        request,
        "admin/lifecycle_done.html",
        {
            "user_name": user_name,
            "headline": headline,
            "done": done,
            "removed": removed or [],
            "user_page": user_page,
        },
    )
    return see_other(request, page, at=ANSWER_PATH)


def user_page(
    request: Request, portal: PortalDep, name: str, *, errors: dict[str, str], status_code: int
) -> Response:
    """The user page again, with an action's errors under its fields, after a redirect."""
    detail = directory.user_detail(portal, name)
    page = render(
        request,
        "admin/user.html",
        {
            "detail": detail,
            "actions": plans.user_actions(detail),
            "status_label": statuses.status_label,
            "mfa_group": portal.settings.mfa_group,
            "action_errors": errors,
        },
        status_code=status_code,
    )
    return see_other(request, page, at=f"/admin/users/{quote(name, safe='')}")


# -- resend and revoke --------------------------------------------------------------------------
@router.post("/admin/users/{name}/resend")
def resend(request: Request, portal: PortalDep, admin: AdminDep, name: str) -> Response:
    try:
        result = waiting.resend(portal, user_name=name, actor=admin.actor)
    except NotFound:
        raise
    except PortalError as exc:
        errors = {"resend": exc.message}
        return user_page(request, portal, name, errors=errors, status_code=refusal_status(exc))
    return link_page(
        request,
        portal,
        result,
        headline=_("New link for {name}").format(name=result.user_name),
        done=[_("The previous link no longer works.")]
        + (
            [_("The enrollment was locked after too many wrong codes; the new link unlocks it.")]
            if result.was_locked
            else []
        ),
    )


@router.post("/admin/users/{name}/revoke")
def revoke(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    name: str,
    delete_user: FormText = "",
    code: FormText = "",
) -> Response:
    delete = bool(delete_user)
    if delete:
        problem = step_up(request, portal, admin, code, f"revoke and delete {name}")
        if problem is not None:
            return user_page(request, portal, name, errors={"code": problem}, status_code=400)
    try:
        result = waiting.revoke(portal, user_name=name, delete_user=delete, actor=admin.actor)
    except NotFound:
        raise
    except PortalError as exc:
        errors = {"revoke": exc.message}
        return user_page(request, portal, name, errors=errors, status_code=refusal_status(exc))
    done = [_("The enrollment link of {name} no longer works.").format(name=result.user_name)]
    if result.user_deleted:
        done.append(
            _("The IAM user {name} was deleted (it had never enrolled).").format(
                name=result.user_name
            )
        )
    elif delete:
        done.append(_("The IAM user {name} was already gone.").format(name=result.user_name))
    return done_page(
        request,
        user_name=result.user_name,
        headline=_("Invitation of {name} revoked").format(name=result.user_name),
        done=done,
    )


# -- lost device --------------------------------------------------------------------------------
def _reset_page(
    request: Request,
    portal: PortalDep,
    name: str,
    *,
    email: str | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    plan = plans.reset_plan(portal, user_name=name)
    return render(
        request,
        "admin/reset_mfa.html",
        {
            "plan": plan,
            "email": plan.email if email is None else email,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/admin/users/{name}/reset-mfa")
def reset_mfa_page(request: Request, portal: PortalDep, admin: AdminDep, name: str) -> Response:
    return _reset_page(request, portal, name)


@router.post("/admin/users/{name}/reset-mfa")
def reset_mfa(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    name: str,
    email: FormText = "",
    code: FormText = "",
) -> Response:
    here = request.url.path
    problem = step_up(request, portal, admin, code, f"reset MFA of {name}")
    if problem is not None:
        page = _reset_page(
            request, portal, name, email=email, errors={"code": problem}, status_code=400
        )
        return see_other(request, page, at=here)
    try:
        result = lost_device.reset_mfa(portal, user_name=name, email=email, actor=admin.actor)
    except NotFound:
        raise
    except ValidationError as exc:
        errors = {exc.field or "_form": exc.message}
        page = _reset_page(request, portal, name, email=email, errors=errors, status_code=400)
        return see_other(request, page, at=here)
    except PortalError as exc:
        errors = {"_form": exc.message}
        page = _reset_page(
            request, portal, name, email=email, errors=errors, status_code=refusal_status(exc)
        )
        return see_other(request, page, at=here)
    return link_page(
        request,
        portal,
        result,
        headline=_("MFA of {name} was reset").format(name=result.user_name),
        done=[
            _("Its MFA devices and its console password were removed."),
            _(
                "It cannot sign in until it sets up a new device with the link below; "
                "enrolling gives it a new temporary password."
            ),
        ],
    )


# -- offboarding --------------------------------------------------------------------------------
def _offboard_page(
    request: Request,
    portal: PortalDep,
    name: str,
    *,
    typed: str = "",
    errors: dict[str, str] | None = None,
    stopped: str | None = None,
    status_code: int = 200,
) -> Response:
    preview = plans.offboard_preview(portal, user_name=name)
    return render(
        request,
        "admin/offboard.html",
        {"preview": preview, "typed": typed, "errors": errors or {}, "stopped": stopped},
        status_code=status_code,
    )


@router.get("/admin/users/{name}/offboard")
def offboard_page(request: Request, portal: PortalDep, admin: AdminDep, name: str) -> Response:
    return _offboard_page(request, portal, name)


@router.post("/admin/users/{name}/offboard")
def offboard(
    request: Request,
    portal: PortalDep,
    admin: AdminDep,
    name: str,
    confirm_name: FormText = "",
    code: FormText = "",
) -> Response:
    here = request.url.path
    preview = plans.offboard_preview(portal, user_name=name)
    try:
        plans.check_typed_name(expected=preview.user_name, typed=confirm_name)
    except ValidationError as exc:
        errors = {exc.field or "confirm_name": exc.message}
        page = _offboard_page(
            request, portal, name, typed=confirm_name, errors=errors, status_code=400
        )
        return see_other(request, page, at=here)
    problem = step_up(request, portal, admin, code, f"offboard {preview.user_name}")
    if problem is not None:
        page = _offboard_page(
            request, portal, name, typed=confirm_name, errors={"code": problem}, status_code=400
        )
        return see_other(request, page, at=here)
    try:
        report = offboarding.offboard(portal, user_name=preview.user_name, actor=admin.actor)
    except NotFound:
        raise
    except PortalError as exc:
        stopped = exc.message if exc.code == "offboard_incomplete" else None
        errors = {} if stopped else {"_form": exc.message}
        page = _offboard_page(
            request,
            portal,
            name,
            typed=confirm_name,
            errors=errors,
            stopped=stopped,
            status_code=refusal_status(exc),
        )
        return see_other(request, page, at=here)
    return done_page(
        request,
        user_name=report.user_name,
        headline=_("{name} was offboarded").format(name=report.user_name),
        done=[
            _("Everything attached to {name} was removed, then the IAM user itself.").format(
                name=report.user_name
            )
        ],
        removed=report.removed,
        user_page=False,  # the user is gone; its page may have nothing left to show
    )

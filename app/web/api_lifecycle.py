"""The lifecycle in the JSON API: resend, revoke, reset MFA, send a link (adopt), offboard.

Same prefix, bearer token and error shape as app/web/api.py. There is no step-up code here:
each route needs its own token scope instead (app.services.api_tokens.SCOPES), and acts only
on users the portal manages (app.services.lifecycle.ownership).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from app.services.lifecycle import adoption, lost_device, offboarding, waiting
from app.services.lifecycle.links import LinkResult
from app.web.api import API_ERRORS, ApiCaller, ErrorOut, check_scope, require_token, scoped
from app.web.deps import PortalDep

_NO_STEP_UP = (
    "Admins in the browser confirm this with a fresh TOTP code; the API asks for a token "
    "scope instead. Only users the portal manages (tag iam-onboard:managed=true) are acted "
    "on; a user tagged iam-onboard:protected=true never (403)."
)
Lifecycle = Annotated[ApiCaller, Depends(scoped("users:lifecycle"))]


class LinkOut(BaseModel):
    user_name: str
    link: str = Field(description="The new enrollment link; shown only in this answer.")
    expires_at: datetime
    mailed: bool = Field(description="True when the portal mailed the link to the person.")


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delete_user: bool = Field(
        default=False,
        description="Also delete the IAM user, only when the portal created it and it never "
        "enrolled; refused (409) otherwise, and then nothing is changed.",
    )


class RevokeOut(BaseModel):
    user_name: str
    user_deleted: bool


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(
        default=None,
        max_length=320,
        description="Ignored: the new link always goes to the email on record, which only an "
        "admin changes (on the user's page, with a fresh code).",
    )


class SendLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(
        default="",
        max_length=320,
        description="Where the link goes. For a user the portal does not manage yet, this "
        "adopts it with this contact; for a managed user it must be the email on record "
        "(or left empty).",
    )
    deadline: date | None = Field(
        default=None,
        description="Join the MFA group at the start of this day (UTC) unless enrolled "
        "before; none: join now.",
    )
    replace_login_profile: bool = Field(
        default=False, description="Give a new temporary console password on enrollment."
    )
    groups: list[str] = Field(
        default_factory=list, description="Assignable groups granted after MFA is bound."
    )


class OffboardOut(BaseModel):
    user_name: str
    removed: list[str] = Field(description="What was removed, in order; the user itself last.")


def _link_out(result: LinkResult) -> LinkOut:
    return LinkOut(
        user_name=result.user_name,
        link=result.link,
        expires_at=result.expires_at,
        mailed=result.mailed,
    )


_USER_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such IAM user, or nothing to act on."},
    409: {"model": ErrorOut, "description": "The user's state does not allow this."},
}

router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    dependencies=[Depends(require_token)],
    responses=API_ERRORS,
)


@router.post(
    "/users/{name}/resend",
    response_model=LinkOut,
    responses=_USER_ERRORS,
    description="A new link for a pending, expired or locked invitation; the old link stops "
    "working at once and a locked enrollment is unlocked. " + _NO_STEP_UP,
)
def resend(name: str, portal: PortalDep, caller: Lifecycle) -> LinkOut:
    """Resend the enrollment link."""
    return _link_out(waiting.resend(portal, user_name=name, actor=caller.actor))


@router.post(
    "/users/{name}/revoke",
    response_model=RevokeOut,
    responses=_USER_ERRORS,
    description="The enrollment link stops working; with delete_user (which also needs the "
    "scope users:delete), a user the portal created that never enrolled is deleted too. "
    + _NO_STEP_UP,
)
def revoke(
    name: str,
    portal: PortalDep,
    caller: Lifecycle,
    body: Annotated[RevokeIn | None, Body()] = None,
) -> RevokeOut:
    """Revoke the invitation."""
    if body is not None and body.delete_user:
        check_scope(caller, "users:delete")
    result = waiting.revoke(
        portal,
        user_name=name,
        delete_user=body.delete_user if body else False,
        actor=caller.actor,
    )
    return RevokeOut(user_name=result.user_name, user_deleted=result.user_deleted)


@router.post(
    "/users/{name}/reset-mfa",
    response_model=LinkOut,
    responses={
        **_USER_ERRORS,
        400: {"model": ErrorOut, "description": "No email address is on record."},
    },
    description="Lost phone: the user's MFA devices are deactivated (the portal's own deleted), "
    "the console password deleted, and a new enrollment link sent to the email on record. "
    + _NO_STEP_UP,
)
def reset_mfa(
    name: str,
    portal: PortalDep,
    caller: Lifecycle,
    body: Annotated[ResetIn | None, Body()] = None,
) -> LinkOut:
    """Reset a lost MFA device."""
    # body.email is ignored on purpose: a request never changes where links go.
    return _link_out(lost_device.reset_mfa(portal, user_name=name, actor=caller.actor))


@router.post(
    "/users/{name}/send-link",
    response_model=LinkOut,
    responses={
        **_USER_ERRORS,
        400: {"model": ErrorOut, "description": "A value the portal cannot accept."},
    },
    description="Send an enrollment link to an existing IAM user (scope users:adopt). A user "
    "the portal does not manage is adopted (tagged iam-onboard:managed=true with the email "
    "given), unless it holds more than the portal can grant: a group other than the MFA and "
    "assignable groups, or a user policy (403). " + _NO_STEP_UP,
)
def send_link(
    name: str,
    body: SendLinkIn,
    portal: PortalDep,
    caller: Annotated[ApiCaller, Depends(scoped("users:adopt"))],
) -> LinkOut:
    """Send an enrollment link to an existing user."""
    deadline = (
        datetime.combine(body.deadline, datetime.min.time(), tzinfo=UTC) if body.deadline else None
    )
    result = adoption.invite_existing_user(
        portal,
        user_name=name,
        email=body.email,
        deadline=deadline,
        replace_login_profile=body.replace_login_profile,
        extra_groups=body.groups,
        actor=caller.actor,
    )
    return _link_out(result)


@router.delete(
    "/users/{name}",
    response_model=OffboardOut,
    responses={
        404: {"model": ErrorOut, "description": "No such IAM user."},
        409: {"model": ErrorOut, "description": "The portal's own AWS identity."},
        502: {
            "model": ErrorOut,
            "description": "AWS stopped the run midway (code offboard_incomplete): the message "
            "says what is left; calling again finishes.",
        },
    },
    description="Offboard (scope users:delete): remove the login profile, access keys, "
    "signing certificates, SSH "
    "keys, service-specific credentials, MFA devices, inline and attached policies and group "
    "memberships in the order AWS requires, then delete the user. " + _NO_STEP_UP,
)
def offboard(
    name: str,
    portal: PortalDep,
    caller: Annotated[ApiCaller, Depends(scoped("users:delete"))],
) -> OffboardOut:
    """Offboard the user."""
    report = offboarding.offboard(portal, user_name=name, actor=caller.actor)
    return OffboardOut(user_name=report.user_name, removed=report.removed)

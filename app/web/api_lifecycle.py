"""The lifecycle in the JSON API: resend, revoke, reset MFA, offboard (DELETE).

Same prefix, bearer token and error shape as app/web/api.py. There is no step-up code here:
the API token is the credential, and whoever holds it can do these things.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from app.services import lifecycle
from app.services.lifecycle_steps import LinkResult
from app.web.api import API_ERRORS, CallerDep, ErrorOut, require_token
from app.web.deps import PortalDep

_NO_STEP_UP = (
    "Admins in the browser confirm this with a fresh TOTP code; the API asks for none, "
    "because the API token is the credential: keep it as safe as an admin's sign-in."
)


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
        description="Where the new link goes; needed only when the portal knows no address.",
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
def resend(name: str, portal: PortalDep, caller: CallerDep) -> LinkOut:
    """Resend the enrollment link."""
    return _link_out(lifecycle.resend(portal, user_name=name, actor=caller.actor))


@router.post(
    "/users/{name}/revoke",
    response_model=RevokeOut,
    responses=_USER_ERRORS,
    description="The enrollment link stops working; with delete_user, a user the portal "
    "created that never enrolled is deleted too. " + _NO_STEP_UP,
)
def revoke(
    name: str,
    portal: PortalDep,
    caller: CallerDep,
    body: Annotated[RevokeIn | None, Body()] = None,
) -> RevokeOut:
    """Revoke the invitation."""
    result = lifecycle.revoke(
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
        400: {"model": ErrorOut, "description": "No email address is known; give one."},
    },
    description="Lost phone: the user's MFA devices are deactivated (virtual ones deleted), "
    "the console password deleted, and a new enrollment link made. " + _NO_STEP_UP,
)
def reset_mfa(
    name: str,
    portal: PortalDep,
    caller: CallerDep,
    body: Annotated[ResetIn | None, Body()] = None,
) -> LinkOut:
    """Reset a lost MFA device."""
    email = body.email if body else None
    return _link_out(lifecycle.reset_mfa(portal, user_name=name, email=email, actor=caller.actor))


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
    description="Offboard: remove the login profile, access keys, signing certificates, SSH "
    "keys, service-specific credentials, MFA devices, inline and attached policies and group "
    "memberships in the order AWS requires, then delete the user. " + _NO_STEP_UP,
)
def offboard(name: str, portal: PortalDep, caller: CallerDep) -> OffboardOut:
    """Offboard the user."""
    report = lifecycle.offboard(portal, user_name=name, actor=caller.actor)
    return OffboardOut(user_name=report.user_name, removed=report.removed)

"""The JSON API for automation under /api/v1, authenticated with `Authorization: Bearer <token>`.

Errors always have the shape {"error": {"code": ..., "message": ...}} (app/web/errors.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from app.errors import PortalError
from app.i18n import _
from app.services import api_tokens, directory, idempotency, statuses
from app.services.directory import DirectoryRow, UserDetail
from app.services.invitations import invite_user
from app.services.portal import Actor
from app.web.deps import PortalDep, client_ip

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token printed once by `iam-onboard create-api-token NAME`.",
)


@dataclass(frozen=True)
class ApiCaller:
    token_id: str
    name: str
    actor: Actor
    scopes: frozenset[str]


class MissingScope(PortalError):
    status = 403
    code = "insufficient_scope"


def require_token(
    request: Request,
    portal: PortalDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiCaller:
    """Every API route needs a live token; without one: 401 with WWW-Authenticate: Bearer."""
    token = api_tokens.authenticate(portal, credentials.credentials if credentials else None)
    if token is None:
        raise HTTPException(
            status_code=401,
            detail=_("A valid API token is required: send Authorization: Bearer <token>."),
            headers={"WWW-Authenticate": "Bearer"},
        )
    actor = Actor(f"api:{token.name}", client_ip(request))
    request.state.log_actor = actor.name  # the request's log line names who called
    return ApiCaller(token.id, token.name, actor, frozenset(token.scopes or ()))


CallerDep = Annotated[ApiCaller, Depends(require_token)]


def check_scope(caller: ApiCaller, scope: str) -> None:
    """403 naming the scope the call needs, when the token lacks it."""
    if scope not in caller.scopes:
        raise MissingScope(
            _(
                "This API token lacks the scope {scope}. Create a token with "
                "`iam-onboard create-api-token NAME --scope {scope}`."
            ).format(scope=scope)
        )


def scoped(scope: str) -> Callable[[ApiCaller], Awaitable[ApiCaller]]:
    """A dependency: the caller, when its token holds `scope` (api_tokens.SCOPES)."""

    # async: FastAPI runs a plain-def dependency in a worker thread, a hop for a set lookup.
    async def dependency(caller: CallerDep) -> ApiCaller:
        check_scope(caller, scope)
        return caller

    return dependency


# -- schemas (documented at /openapi.json) -----------------------------------------------------
class ErrorBody(BaseModel):
    code: str = Field(examples=["unauthorized"])
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class InvitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_name: str = Field(min_length=1, max_length=64, examples=["alice"])
    email: str = Field(min_length=3, max_length=320, examples=["alice@example.com"])
    groups: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Extra groups from the portal's allow-list, granted once MFA is bound.",
    )
    note: str | None = Field(default=None, max_length=2000)


class InvitationOut(BaseModel):
    invitation_id: str
    user_name: str
    email: str
    link: str = Field(description="The enrollment link; shown only in this answer.")
    expires_at: datetime


class UserOut(BaseModel):
    user_name: str
    status: str = Field(examples=list(statuses.STATUSES))
    email: str | None
    invited_by: str | None
    invited_at: datetime | None
    invite_expires_at: datetime | None
    enrolled_at: datetime | None
    virtual_mfa_devices: int
    mfa_of_other_kind: bool = Field(
        description="The credential report says MFA is on, but no virtual device is listed."
    )
    last_console_sign_in: datetime | None
    in_mfa_group: bool
    console_password: bool


class UsersPage(BaseModel):
    users: list[UserOut]
    page: int
    per_page: int
    pages: int
    total: int = Field(description="Users matching the status filter.")
    counts: dict[str, int] = Field(description="Users per status, across the whole account.")
    refreshed_at: datetime | None = Field(description="When IAM was last read; null: never.")
    credential_report_generated_at: datetime | None


class MfaDeviceOut(BaseModel):
    serial_number: str
    enabled_at: datetime | None
    virtual: bool


class AccessKeyOut(BaseModel):
    access_key_id: str
    status: str
    created_at: datetime | None
    last_used_at: datetime | None


class InvitationState(BaseModel):
    invitation_id: str
    status: str
    email: str
    invited_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    locked_at: datetime | None
    failed_attempts: int
    extra_groups: list[str]


class EnrollmentState(BaseModel):
    status: str
    created_at: datetime
    expires_at: datetime
    enabled_at: datetime | None


class AuditEventOut(BaseModel):
    at: datetime
    actor: str
    action: str
    outcome: str
    source_ip: str | None
    aws_request_id: str | None
    detail: str | None


class UserDetailOut(BaseModel):
    user_name: str
    status: str
    exists_in_iam: bool
    user_id: str | None
    arn: str | None
    created_at: datetime | None
    last_console_sign_in: datetime | None
    groups: list[str]
    in_mfa_group: bool
    mfa_devices: list[MfaDeviceOut]
    console_password: bool
    password_reset_required: bool
    access_keys: list[AccessKeyOut]
    invitation: InvitationState | None
    enrollment: EnrollmentState | None
    events: list[AuditEventOut]
    checked_at: datetime


def _user_out(r: DirectoryRow) -> UserOut:
    return UserOut(
        user_name=r.user_name,
        status=r.status,
        email=r.email,
        invited_by=r.invited_by,
        invited_at=r.invited_at,
        invite_expires_at=r.invite_expires_at,
        enrolled_at=r.enrolled_at,
        virtual_mfa_devices=r.mfa_devices,
        mfa_of_other_kind=r.other_mfa,
        last_console_sign_in=r.last_console_sign_in,
        in_mfa_group=r.in_mfa_group,
        console_password=r.has_password,
    )


def _detail_out(d: UserDetail) -> UserDetailOut:
    inv, enr = d.invitation, d.enrollment
    return UserDetailOut(
        user_name=d.user_name,
        status=d.status,
        exists_in_iam=d.exists_in_iam,
        user_id=d.user_id,
        arn=d.arn,
        created_at=d.created_at,
        last_console_sign_in=d.password_last_used,
        groups=d.groups,
        in_mfa_group=d.in_mfa_group,
        mfa_devices=[
            MfaDeviceOut(serial_number=m.serial, enabled_at=m.enabled_at, virtual=m.virtual)
            for m in d.mfa_devices
        ],
        console_password=d.login_profile,
        password_reset_required=d.password_reset_required,
        access_keys=[
            AccessKeyOut(
                access_key_id=k.key_id,
                status=k.status,
                created_at=k.created_at,
                last_used_at=k.last_used_at,
            )
            for k in d.access_keys
        ],
        invitation=InvitationState(
            invitation_id=inv.id,
            status=inv.status,
            email=inv.email,
            invited_by=inv.invited_by,
            created_at=inv.created_at,
            expires_at=inv.expires_at,
            used_at=inv.used_at,
            revoked_at=inv.revoked_at,
            locked_at=inv.locked_at,
            failed_attempts=inv.failed_attempts,
            extra_groups=list(inv.extra_groups or []),
        )
        if inv
        else None,
        enrollment=EnrollmentState(
            status=enr.status,
            created_at=enr.created_at,
            expires_at=enr.expires_at,
            enabled_at=enr.enabled_at,
        )
        if enr
        else None,
        events=[
            AuditEventOut(
                at=e.at,
                actor=e.actor,
                action=e.action,
                outcome=e.outcome,
                source_ip=e.source_ip,
                aws_request_id=e.aws_request_id,
                detail=e.detail,
            )
            for e in d.events
        ],
        checked_at=d.checked_at,
    )


# What any route may answer besides its own; each route adds the 404/409 it can give.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "A value the portal or AWS IAM cannot accept."},
    401: {"model": ErrorOut, "description": "No API token, or not a valid one."},
    403: {"model": ErrorOut, "description": "The token lacks the scope this call needs."},
    422: {"model": ErrorOut, "description": "A malformed request: a parameter or the body."},
    502: {"model": ErrorOut, "description": "AWS IAM refused the portal's call."},
    503: {"model": ErrorOut, "description": "AWS IAM is unreachable or throttling; try later."},
}

router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    dependencies=[Depends(require_token)],
    responses=API_ERRORS,
)


# -- routes -------------------------------------------------------------------------------------
@router.post(
    "/invitations",
    status_code=201,
    response_model=InvitationOut,
    responses={
        400: {"model": ErrorOut, "description": "A value the portal cannot accept."},
        409: {"model": ErrorOut, "description": "The user exists, or the same key is running."},
        422: {"model": ErrorOut, "description": "Malformed body, or a key reused."},
    },
)
def create_invitation(
    body: InvitationIn,
    portal: PortalDep,
    caller: Annotated[ApiCaller, Depends(scoped("invitations:write"))],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retry with the same key and body: the same answer, one user.",
        ),
    ] = None,
) -> JSONResponse:
    """Create the IAM user inside the MFA group and a single-use enrollment link (scope
    `invitations:write`)."""

    def invite() -> tuple[int, dict[str, Any]]:
        result = invite_user(
            portal,
            user_name=body.user_name,
            email=body.email,
            extra_groups=body.groups,
            note=body.note,
            actor=caller.actor,
        )
        out = InvitationOut(
            invitation_id=result.invitation_id,
            user_name=result.user_name,
            email=result.email,
            link=result.link,
            expires_at=result.expires_at,
        )
        return 201, out.model_dump(mode="json")

    if idempotency_key is None:
        status_code, answer = invite()
        return JSONResponse(answer, status_code=status_code)
    stored = idempotency.run_once(
        portal,
        scope=caller.token_id,
        operation="POST /api/v1/invitations",
        key=idempotency_key,
        payload=body.model_dump(mode="json"),
        action=invite,
    )
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)


@router.get("/users", response_model=UsersPage)
def list_users(
    portal: PortalDep,
    caller: Annotated[ApiCaller, Depends(scoped("users:read"))],
    status: Annotated[
        str | None,
        Query(description="A status as written (`invite expired`) or as a slug (`invite_expired`)"),
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="Part of a name or email")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=directory.MAX_PER_PAGE)] = 50,
    refresh: Annotated[bool, Query(description="Read IAM first, like the refresh button")] = False,
) -> UsersPage:
    """Every IAM user of the account with its status, one page at a time (scope `users:read`)."""
    if refresh:
        directory.refresh_directory(portal, actor=caller.actor)
    listing = directory.list_users(portal, status=status, query=q, page=page, per_page=per_page)
    return UsersPage(
        users=[_user_out(r) for r in listing.rows],
        page=listing.page,
        per_page=listing.per_page,
        pages=listing.pages,
        total=listing.total,
        counts=listing.counts,
        refreshed_at=listing.snapshot.refreshed_at,
        credential_report_generated_at=listing.snapshot.report_generated_at,
    )


@router.get(
    "/users/{name}",
    response_model=UserDetailOut,
    responses={404: {"model": ErrorOut, "description": "No such IAM user."}},
)
def get_user(
    name: str,
    portal: PortalDep,
    caller: Annotated[ApiCaller, Depends(scoped("users:read"))],
) -> UserDetailOut:
    """One user, checked live in IAM, with the invitation, enrollment and audit timeline
    (scope `users:read`)."""
    return _detail_out(directory.user_detail(portal, name))

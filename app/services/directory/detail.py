"""One user, read live: its IAM facts (a few calls for this user) and the portal's records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.aws.iam import EMAIL_TAG, MANAGED_TAG, PROTECTED_TAG, MfaDevice
from app.aws.ownership import is_true_tag
from app.errors import NotFound
from app.i18n import _
from app.services import audit
from app.services.directory.records import aware
from app.services.invitations import USER_NAME
from app.services.own_writes import own_writes
from app.services.portal import Portal
from app.services.statuses import (
    MEANINGFUL_INVITATION,
    EnrollmentFacts,
    InvitationFacts,
    compute_status,
)
from app.store.models import AuditEvent, Enrollment, Invitation


@dataclass(frozen=True)
class AccessKeyFacts:
    key_id: str
    status: str
    created_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class UserDetail:
    user_name: str
    status: str
    exists_in_iam: bool
    managed: bool  # tagged iam-onboard:managed=true: the portal may act on it
    protected: bool  # tagged iam-onboard:protected=true: the portal never acts on it
    email_on_record: str  # the iam-onboard:email tag
    user_id: str | None
    arn: str | None
    created_at: datetime | None
    password_last_used: datetime | None
    groups: list[str]
    in_mfa_group: bool
    mfa_devices: list[MfaDevice]
    login_profile: bool
    login_profile_created_at: datetime | None
    password_reset_required: bool
    access_keys: list[AccessKeyFacts]
    invitation: Invitation | None  # the latest
    invitations: list[Invitation]  # every one, latest first
    enrollment: Enrollment | None  # the latest enrollment of the latest invitation
    events: list[AuditEvent]
    checked_at: datetime


def user_detail(portal: Portal, name: str) -> UserDetail:
    """One user's IAM facts, read live (a few calls for this user), and the portal's records."""
    if not USER_NAME.fullmatch(name):
        raise NotFound(_("There is no IAM user named {name} in this account.").format(name=name))
    with portal.db.session() as session:
        invitations = list(
            session.scalars(
                select(Invitation)
                .where(Invitation.user_name_key == name.lower())
                .order_by(Invitation.created_at.desc(), Invitation.id.desc())
            )
        )
        meaningful = [i for i in invitations if i.status in MEANINGFUL_INVITATION]
        latest = meaningful[0] if meaningful else None
        enrollment = None
        if latest is not None:
            enrollment = session.scalars(
                select(Enrollment)
                .where(Enrollment.invitation_id == latest.id)
                .order_by(Enrollment.created_at.desc(), Enrollment.id.desc())
            ).first()
    iam = portal.iam()
    # What the portal did to this user a moment ago may not show in IAM yet: its own records
    # fill in, so the page never says "not enrolled" of someone who just enrolled.
    writes = own_writes(portal, name)
    user = (iam.just_created() if writes.user else iam).get_user(name)
    if user is None and latest is None:
        raise NotFound(_("There is no IAM user named {name} in this account.").format(name=name))
    groups: list[str] = []
    devices: list[MfaDevice] = []
    profile: dict[str, Any] | None = None
    keys: list[AccessKeyFacts] = []
    tags: dict[str, str] = {}
    if user is not None:
        name = user["UserName"]  # IAM's spelling
        tags = iam.user_tags(name)
        groups = writes.with_groups(iam.groups_for_user(name))
        devices = writes.with_devices(iam.mfa_devices(name))
        profile = iam.login_profile(name) or ({} if writes.login_profile else None)
        for key in iam.access_keys(name):
            keys.append(
                AccessKeyFacts(
                    key_id=key["AccessKeyId"],
                    status=key.get("Status", ""),
                    created_at=aware(key.get("CreateDate")),
                    last_used_at=aware(iam.access_key_last_used(key["AccessKeyId"])),
                )
            )
    in_group = portal.settings.mfa_group in groups
    inv_view = None
    if latest is not None:
        inv_view = InvitationFacts(
            latest.id,
            latest.user_name,
            latest.email,
            latest.status,
            latest.invited_by,
            latest.created_at,
            latest.expires_at,
            latest.used_at,
            latest.locked_at,
        )
    enr_view = (
        EnrollmentFacts(enrollment.status, enrollment.expires_at, enrollment.enabled_at)
        if enrollment
        else None
    )
    return UserDetail(
        user_name=name,
        status=compute_status(
            invitation=inv_view,
            enrollment=enr_view,
            has_mfa=bool(devices),
            in_mfa_group=in_group,
            now=portal.clock(),
        ),
        exists_in_iam=user is not None,
        managed=is_true_tag(tags.get(MANAGED_TAG)),
        protected=is_true_tag(tags.get(PROTECTED_TAG)),
        email_on_record=tags.get(EMAIL_TAG, ""),
        user_id=(user or {}).get("UserId"),
        arn=(user or {}).get("Arn"),
        created_at=aware((user or {}).get("CreateDate")),
        password_last_used=aware((user or {}).get("PasswordLastUsed")),
        groups=groups,
        in_mfa_group=in_group,
        mfa_devices=devices,
        login_profile=profile is not None,
        login_profile_created_at=aware((profile or {}).get("CreateDate")),
        password_reset_required=bool((profile or {}).get("PasswordResetRequired")),
        access_keys=keys,
        invitation=latest,
        invitations=invitations,
        enrollment=enrollment,
        events=audit.events_for_user(portal, name),
        checked_at=portal.clock(),
    )

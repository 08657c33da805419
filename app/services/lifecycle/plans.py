"""What an admin sees before a lifecycle action: which actions fit, and what each would do.

Read-only: IAM is read, nothing is changed (these back the GET pages of the admin console).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.aws.iam import MfaDevice
from app.errors import ValidationError
from app.i18n import _
from app.services.directory import UserDetail
from app.services.invitations import LIVE_STATES
from app.services.lifecycle.adoption import access_key_warnings
from app.services.lifecycle.links import KeyInUse
from app.services.lifecycle.offboarding import describe_resources, with_own_writes
from app.services.lifecycle.ownership import beyond_portal_grants, ownership, require_managed
from app.services.own_writes import own_writes, user_reader
from app.services.portal import Portal
from app.store.models import Invitation
from app.store.states import InvitationState

# Invitations whose link can be renewed (pending covers locked: status stays pending).
RESENDABLE = (InvitationState.CREATING, InvitationState.PENDING, InvitationState.EXPIRED)


@dataclass(frozen=True)
class UserActions:
    """The lifecycle actions that make sense for a user in its current state."""

    resend: bool = False
    revoke: bool = False
    revoke_can_delete: bool = False  # the never-enrolled portal user may go with the link
    reset_mfa: bool = False
    send_link: bool = False
    offboard: bool = False
    change_email: bool = False

    @property
    def any(self) -> bool:
        return (
            self.resend
            or self.revoke
            or self.reset_mfa
            or self.send_link
            or self.offboard
            or self.change_email
        )


def _latest(invitations: list[Invitation]) -> Invitation | None:
    # The same choice as links.latest_invitation: a live one wins a tie.
    rows = sorted(invitations, key=lambda r: (r.created_at, r.status in LIVE_STATES), reverse=True)
    return rows[0] if rows else None


def user_actions(detail: UserDetail) -> UserActions:
    """Resend/revoke for a waiting link, reset for MFA, send-link without a live link, offboard;
    nothing on a protected user, only adoption (send-link) on one the portal does not manage."""
    if detail.exists_in_iam and detail.protected:
        return UserActions()
    inv = _latest([i for i in detail.invitations if i.status != InvitationState.FAILED])
    waiting = inv is not None and inv.status in RESENDABLE
    enrolled = inv is not None and inv.status == InvitationState.USED
    never_enrolled = (
        waiting
        and inv is not None
        and not inv.existing_user
        and detail.exists_in_iam
        and not detail.mfa_devices
        and not detail.login_profile
        and not detail.access_keys
    )
    if detail.exists_in_iam and not detail.managed:
        return UserActions(send_link=not waiting)
    return UserActions(
        resend=waiting,
        revoke=waiting,
        revoke_can_delete=never_enrolled,
        reset_mfa=detail.exists_in_iam and (bool(detail.mfa_devices) or enrolled),
        send_link=detail.exists_in_iam and not waiting and not enrolled,
        offboard=detail.exists_in_iam,
        change_email=detail.exists_in_iam,
    )


@dataclass(frozen=True)
class SendLinkPlan:
    user_name: str
    email: str  # the iam-onboard:email tag (the email on record); "" when unknown
    managed: bool  # False: sending the link adopts the user
    protected: bool  # True: the portal never touches it
    beyond_grants: list[str]  # what an unmanaged user holds that the portal could not grant
    has_login_profile: bool
    mfa_devices: list[MfaDevice]
    in_mfa_group: bool
    keys_in_use: list[KeyInUse]


def send_link_plan(portal: Portal, *, user_name: str) -> SendLinkPlan:
    """The send-link form's defaults and warnings (access keys used in the last 30 days), and
    whether the user may be adopted at all."""
    iam = portal.iam()
    owner = ownership(iam, user_name)
    name = owner.user_name
    groups = {g.lower() for g in iam.groups_for_user(name)}
    held = [] if owner.managed else beyond_portal_grants(portal, iam, name)
    return SendLinkPlan(
        user_name=name,
        email=owner.email,
        managed=owner.managed,
        protected=owner.protected,
        beyond_grants=held,
        has_login_profile=iam.login_profile(name) is not None,
        mfa_devices=iam.mfa_devices(name),
        in_mfa_group=portal.settings.mfa_group.lower() in groups,
        keys_in_use=access_key_warnings(portal, user_name=name),
    )


@dataclass(frozen=True)
class ResetPlan:
    user_name: str
    email: str
    mfa_devices: list[MfaDevice]
    has_login_profile: bool


def reset_plan(portal: Portal, *, user_name: str) -> ResetPlan:
    """What a lost-device reset removes, and where the new link would go."""
    iam = portal.iam()
    writes = own_writes(portal, user_name)  # IAM may not show them yet
    owner = require_managed(user_reader(portal, iam, user_name), user_name)
    name = owner.user_name
    return ResetPlan(
        user_name=name,
        email=owner.email,
        mfa_devices=writes.with_devices(iam.mfa_devices(name)),
        has_login_profile=writes.login_profile or iam.login_profile(name) is not None,
    )


@dataclass(frozen=True)
class OffboardPreview:
    user_name: str
    items: list[str]  # in the order offboarding removes them; the user itself comes last


def offboard_preview(portal: Portal, *, user_name: str) -> OffboardPreview:
    """The dry run: every thing attached to the user, as offboarding would remove it."""
    iam = portal.iam()
    name = require_managed(user_reader(portal, iam, user_name), user_name).user_name
    held = with_own_writes(iam.user_resources(name), own_writes(portal, name))
    return OffboardPreview(user_name=name, items=describe_resources(held))


def check_typed_name(*, expected: str, typed: str) -> None:
    """The admin typed the user name exactly, as a confirmation of a destructive action."""
    if typed.strip() != expected:
        raise ValidationError(
            _("Type the user name {name} exactly as shown to confirm.").format(name=expected),
            field="confirm_name",
        )

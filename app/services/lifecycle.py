"""The rest of the lifecycle: resend, revoke, lost phone, offboarding.

Each acts only on users the portal manages (app.services.ownership); existing users are
adopted in app.services.adoption.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import NoReturn

from app.aws.errors import AwsError
from app.aws.iam import INVITATION_TAG, IamGateway, UserResources
from app.errors import Conflict, NotFound, PortalError, ValidationError
from app.i18n import _
from app.services import audit
from app.services.invitations import EMAIL, finish_invitation
from app.services.lifecycle_steps import (
    LinkResult,
    abandon_enrollments,
    delete_unassigned_device,
    ensure_in_mfa_group,
    iam_step,
    issue_link,
    latest_invitation,
    link_expiry,
    link_result,
    new_existing_invitation,
    revoke_live,
)
from app.services.ownership import require_managed
from app.services.portal import Actor, Portal
from app.services.statuses import state_label
from app.store.models import Invitation
from app.store.states import InvitationState


@dataclass(frozen=True)
class RevokeResult:
    user_name: str
    user_deleted: bool


@dataclass
class OffboardReport:
    user_name: str
    removed: list[str] = field(default_factory=list)


def _require_managed_if_present(portal: Portal, inv: Invitation) -> None:
    """A waiting link's user, when it exists in IAM, must be one the portal manages."""
    iam = portal.iam()
    if iam.user_exists(inv.user_name):
        require_managed(iam, inv.user_name)


# -- resend and revoke ------------------------------------------------------------------------
def resend(portal: Portal, *, user_name: str, actor: Actor) -> LinkResult:
    """A new link for a pending, expired or locked invitation; the old link dies at once."""
    inv = latest_invitation(portal, user_name)
    if inv is None:
        raise NotFound(_("{name} has no invitation to resend.").format(name=user_name))
    # A half-made invite's user may not carry its tags yet.
    if inv.status != InvitationState.CREATING:
        _require_managed_if_present(portal, inv)
    if inv.status == InvitationState.CREATING:  # an invite cut short: finishing it issues the link
        result = finish_invitation(portal, invitation_id=inv.id, actor=actor)
        return link_result(portal, inv.id, result.link.rsplit("/", 1)[1], reason="invite")
    if inv.status == InvitationState.USED:
        raise Conflict(
            _("{name} has already enrolled; use reset-mfa for a lost phone.").format(
                name=inv.user_name
            )
        )
    if inv.status not in (InvitationState.PENDING, InvitationState.EXPIRED):
        raise Conflict(
            _("The invitation of {name} was {status}; send a new one instead.").format(
                name=inv.user_name, status=state_label(inv.status)
            )
        )
    abandon_enrollments(portal, invitation_ids=[inv.id], actor=actor)
    token = issue_link(portal, inv.id, expires_at=link_expiry(portal, inv.enforce_at))
    was = "locked" if inv.locked_at else inv.status
    audit.record(
        portal,
        actor=actor,
        action="resend",
        target_user=inv.user_name,
        detail=f"was {was}; the previous link no longer works",
    )
    return link_result(portal, inv.id, token, reason="resend")


def revoke(
    portal: Portal, *, user_name: str, delete_user: bool = False, actor: Actor
) -> RevokeResult:
    """The link stops working; with delete_user, a never-enrolled portal user is deleted too."""
    inv = latest_invitation(portal, user_name)
    if inv is None:
        raise NotFound(_("{name} has no invitation to revoke.").format(name=user_name))
    name = inv.user_name
    if inv.status != InvitationState.CREATING:
        _require_managed_if_present(portal, inv)
    if inv.status == InvitationState.USED:
        raise Conflict(
            _(
                "{name} has already enrolled, so there is no link to revoke. "
                "Use offboard to remove the user."
            ).format(name=name)
        )
    iam = portal.iam()
    if delete_user:
        _check_never_enrolled(iam, inv)  # before anything changes: a refusal changes nothing
    revoke_live(portal, user_name=name, actor=actor, why="revoked by an admin")
    detail = "deleting the never-enrolled user" if delete_user else None
    audit.record(portal, actor=actor, action="revoke", target_user=name, detail=detail)
    if not delete_user:
        return RevokeResult(user_name=name, user_deleted=False)
    step = partial(iam_step, portal, actor=actor, iam=iam, user=name)
    for group in iam.groups_for_user(name) if iam.user_exists(name) else []:
        step(
            action="iam.remove_user_from_group",
            detail=group,
            call=partial(iam.remove_user_from_group, name, group),
        )
    deleted = step(
        action="iam.delete_user", detail="never enrolled", call=partial(iam.delete_user, name)
    )
    return RevokeResult(user_name=name, user_deleted=deleted)


def _check_never_enrolled(iam: IamGateway, inv: Invitation) -> None:
    name = inv.user_name
    keep = _(" Revoke without deleting, or offboard the user.")
    if inv.existing_user:
        raise Conflict(
            _("{name} existed before this invitation, so the portal will not delete it.").format(
                name=name
            )
            + keep
        )
    if not iam.user_exists(name):
        return  # already gone; revoking is all that is left to do
    if iam.user_tags(name).get(INVITATION_TAG) != inv.id:
        raise Conflict(
            _("The IAM user {name} was not created by this invitation.").format(name=name) + keep
        )
    res = iam.user_resources(name)
    others = describe_resources(dataclasses.replace(res, groups=[]))
    if others:
        raise Conflict(
            _("{name} has more than the portal gave it ({items}).").format(
                name=name, items="; ".join(others)
            )
            + keep
        )


# -- lost phone -------------------------------------------------------------------------------
def reset_mfa(
    portal: Portal, *, user_name: str, actor: Actor, email: str | None = None
) -> LinkResult:
    """Lost phone: MFA devices and console password removed, a new link sent to the email on
    record. `email`, when given, must be that email: a reset never changes where links go."""
    iam = portal.iam()
    owner = require_managed(iam, user_name)
    name = owner.user_name
    if not EMAIL.fullmatch(owner.email):
        raise ValidationError(
            _("No email address is on record for {name}; set one on its page first.").format(
                name=name
            ),
            field="email",
        )
    given = (email or "").strip()
    if given and given.lower() != owner.email.lower():
        raise ValidationError(
            _(
                "The email on record for {name} is {email}; the new link goes there. To send "
                "it elsewhere, change the email on the user's page first."
            ).format(name=name, email=owner.email),
            field="email",
        )
    retired = revoke_live(portal, user_name=name, actor=actor, why="replaced by reset-mfa")
    step = partial(iam_step, portal, actor=actor, iam=iam, user=name)
    for device in iam.mfa_devices(name):
        step(
            action="iam.deactivate_mfa_device",
            detail=device.serial,
            call=partial(iam.deactivate_mfa_device, name, device.serial),
        )
        # Only the portal's own devices are deleted; the others (keys, hardware tokens, a device
        # the person made themselves) are freed and stay for the account's admin.
        if device.portal:
            step(
                action="iam.delete_virtual_mfa_device",
                detail=device.serial,
                call=partial(iam.delete_virtual_mfa_device, device.serial),
            )
    _delete_freed_devices(portal, iam, name, actor)
    step(
        action="iam.delete_login_profile",
        detail="console password removed until MFA is set up again",
        call=partial(iam.delete_login_profile, name),
    )
    ensure_in_mfa_group(portal, iam=iam, user=name, actor=actor)
    inv_id = new_existing_invitation(
        portal,
        name=name,
        email=owner.email,
        extra_groups=list(dict.fromkeys(g for r in retired for g in r.extra_groups)),
        replace_login_profile=True,  # the old one is gone; enrollment makes a new one
        enforce_at=None,
        actor=actor,
    )
    token = issue_link(portal, inv_id)
    audit.record(
        portal,
        actor=actor,
        action="reset_mfa",
        target_user=name,
        detail="devices and console password removed; new link issued",
    )
    return link_result(portal, inv_id, token, reason="reset")


def _delete_freed_devices(portal: Portal, iam: IamGateway, name: str, actor: Actor) -> None:
    """Delete the user's devices (the portal's own) that no longer show under the user: freed by
    a run cut short between DeactivateMFADevice and DeleteVirtualMFADevice, or left by an
    enrollment."""
    for device in iam.virtual_mfa_devices("Unassigned"):
        if device.portal and device.serial.rsplit("/", 1)[-1].lower() == name.lower():
            delete_unassigned_device(
                portal, iam=iam, serial=device.serial, user_name=name, actor=actor
            )


# -- offboarding ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Step:
    action: str
    label: str
    call: Callable[[], None]


def _steps(iam: IamGateway | None, name: str, res: UserResources) -> list[_Step]:
    """What DeleteUser needs gone first, in the order AWS requires; `iam` None only labels."""

    def call(method: str, *args: str) -> Callable[[], None]:
        return partial(getattr(iam, method), *args) if iam else lambda: None

    steps = []
    if res.login_profile:
        label = _("login profile (console password)")
        steps.append(_Step("delete_login_profile", label, call("delete_login_profile", name)))
    for key in res.access_keys:
        label = _("access key {id}").format(id=key)
        steps.append(_Step("delete_access_key", label, call("delete_access_key", name, key)))
    for cert in res.signing_certificates:
        label = _("signing certificate {id}").format(id=cert)
        method = "delete_signing_certificate"
        steps.append(_Step(method, label, call(method, name, cert)))
    for key in res.ssh_public_keys:
        label = _("SSH public key {id}").format(id=key)
        steps.append(
            _Step("delete_ssh_public_key", label, call("delete_ssh_public_key", name, key))
        )
    for cred in res.service_credentials:
        label = _("service-specific credential {id}").format(id=cred)
        method = "delete_service_specific_credential"
        steps.append(_Step(method, label, call(method, name, cred)))
    for device in res.mfa_devices:
        if device.portal:
            label = _("MFA device {serial}").format(serial=device.serial)
        else:  # not the portal's to delete: freed, then left for the account's admin
            label = _(
                "MFA device {serial} (deactivated; not created by the portal, so it stays in "
                "the account for its administrator to delete)"
            ).format(serial=device.serial)
        method = "deactivate_mfa_device"
        steps.append(_Step(method, label, call(method, name, device.serial)))
        if device.portal:
            method = "delete_virtual_mfa_device"
            steps.append(_Step(method, label, call(method, device.serial)))
    for policy in res.inline_policies:
        label = _("inline policy {name}").format(name=policy)
        steps.append(_Step("delete_user_policy", label, call("delete_user_policy", name, policy)))
    for arn in res.attached_policies:
        label = _("attached policy {arn}").format(arn=arn)
        steps.append(_Step("detach_user_policy", label, call("detach_user_policy", name, arn)))
    for group in res.groups:
        label = _("group membership {name}").format(name=group)
        method = "remove_user_from_group"
        steps.append(_Step(method, label, call(method, name, group)))
    return steps


def describe_resources(res: UserResources) -> list[str]:
    """One line per thing attached to the user, in the order offboarding removes them."""
    return list(dict.fromkeys(step.label for step in _steps(None, "", res)))


def offboard_plan(portal: Portal, *, user_name: str) -> UserResources:
    """The dry run: everything attached to the user that offboarding would remove."""
    iam = portal.iam()
    return iam.user_resources(require_managed(iam, user_name).user_name)


def offboard(portal: Portal, *, user_name: str, actor: Actor) -> OffboardReport:
    """Remove everything attached to the user in the order AWS requires, then the user."""
    iam = portal.iam()
    name = require_managed(iam, user_name).user_name
    if iam.caller_identity()["arn"].endswith(f":user/{name}"):
        raise Conflict(_("{name} is the portal's own AWS identity.").format(name=name))
    revoke_live(portal, user_name=name, actor=actor, why="user offboarded")
    report = OffboardReport(user_name=name)
    steps = _steps(iam, name, iam.user_resources(name))
    user_label = _("IAM user {name}").format(name=name)
    steps.append(_Step("delete_user", user_label, partial(iam.delete_user, name)))
    for step in steps:
        try:
            iam_step(
                portal,
                actor=actor,
                iam=iam,
                action=f"iam.{step.action}",
                user=name,
                detail=step.label,
                call=step.call,
            )
        except AwsError as exc:
            _offboard_failed(portal, iam, name, actor, report, exc)
        if step.label not in report.removed:
            report.removed.append(step.label)
    _delete_freed_devices(portal, iam, name, actor)
    audit.record(
        portal,
        actor=actor,
        action="offboard",
        target_user=name,
        detail=f"{len(report.removed)} item(s) removed",
    )
    return report


def _offboard_failed(
    portal: Portal,
    iam: IamGateway,
    name: str,
    actor: Actor,
    report: OffboardReport,
    exc: AwsError,
) -> NoReturn:
    try:
        left = describe_resources(iam.user_resources(name))
        left_text = "; ".join(left) if left else _("nothing but the user itself")
    except AwsError:
        left_text = _("unknown (AWS did not answer)")
    audit.record(
        portal,
        actor=actor,
        action="offboard",
        target_user=name,
        outcome="failed",
        aws_request_id=exc.request_id,
        detail=f"stopped at {exc.action}: {exc.message}",
    )
    raise PortalError(
        _(
            "Offboarding {name} stopped: {error} Removed so far: {done}. Still there: {left}. "
            "Run offboard again to finish."
        ).format(
            name=name, error=exc.message, done="; ".join(report.removed) or "-", left=left_text
        ),
        status=exc.status,
        code="offboard_incomplete",
    ) from exc

"""The rest of the lifecycle: resend, revoke, lost phone, existing users, offboarding."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NoReturn

from app.aws.errors import AwsError
from app.aws.iam import EMAIL_TAG, INVITATION_TAG, IamGateway, UserResources
from app.errors import Conflict, NotFound, PortalError, ValidationError
from app.i18n import _
from app.services import audit
from app.services.invitations import EMAIL, LIVE_STATES, finish_invitation, validate_invite
from app.services.lifecycle_steps import (
    KeyInUse,
    LinkResult,
    abandon_enrollments,
    delete_unassigned_device,
    ensure_in_mfa_group,
    iam_step,
    issue_link,
    latest_invitation,
    link_expiry,
    link_result,
    revoke_live,
)
from app.services.portal import Actor, Portal
from app.services.statuses import state_label
from app.store.models import Invitation

KEY_IN_USE_DAYS = 30


@dataclass(frozen=True)
class RevokeResult:
    user_name: str
    user_deleted: bool


@dataclass
class OffboardReport:
    user_name: str
    removed: list[str] = field(default_factory=list)


def _require_user(iam: IamGateway, user_name: str) -> dict[str, Any]:
    user = iam.get_user(user_name.strip())
    if user is None:
        raise NotFound(_("There is no IAM user named {name}.").format(name=user_name))
    return user


# -- resend and revoke ------------------------------------------------------------------------
def resend(portal: Portal, *, user_name: str, actor: Actor) -> LinkResult:
    """A new link for a pending, expired or locked invitation; the old link dies at once."""
    inv = latest_invitation(portal, user_name)
    if inv is None:
        raise NotFound(_("{name} has no invitation to resend.").format(name=user_name))
    if inv.status == "creating":  # an invite cut short: finishing it issues the link
        result = finish_invitation(portal, invitation_id=inv.id, actor=actor)
        return link_result(portal, inv.id, result.link.rsplit("/", 1)[1], reason="invite")
    if inv.status == "used":
        raise Conflict(
            _("{name} has already enrolled; use reset-mfa for a lost phone.").format(
                name=inv.user_name
            )
        )
    if inv.status not in ("pending", "expired"):
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
    if inv.status == "used":
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
    """Lost phone: MFA devices and console password removed, a new enrollment link issued."""
    iam = portal.iam()
    user = _require_user(iam, user_name)
    name = str(user["UserName"])
    latest = latest_invitation(portal, name)
    known = latest.email if latest else iam.user_tags(name).get(EMAIL_TAG, "")
    email = (email or "").strip() or known
    if not EMAIL.fullmatch(email):
        raise ValidationError(
            _("No email address is known for {name}; give one.").format(name=name), field="email"
        )
    retired = revoke_live(portal, user_name=name, actor=actor, why="replaced by reset-mfa")
    step = partial(iam_step, portal, actor=actor, iam=iam, user=name)
    for device in iam.mfa_devices(name):
        step(
            action="iam.deactivate_mfa_device",
            detail=device.serial,
            call=partial(iam.deactivate_mfa_device, name, device.serial),
        )
        if device.virtual:  # other kinds (keys, hardware tokens) cannot be deleted, only freed
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
    inv_id = _new_existing_invitation(
        portal,
        name=name,
        email=email,
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
    """Delete the user's devices that no longer show under the user: freed by a run cut short
    between DeactivateMFADevice and DeleteVirtualMFADevice, or left by an enrollment."""
    for device in iam.virtual_mfa_devices("Unassigned"):
        if device.serial.rsplit("/", 1)[-1].lower() == name.lower():
            delete_unassigned_device(
                portal, iam=iam, serial=device.serial, user_name=name, actor=actor
            )


def _new_existing_invitation(
    portal: Portal,
    *,
    name: str,
    email: str,
    extra_groups: list[str],
    replace_login_profile: bool,
    enforce_at: datetime | None,
    actor: Actor,
) -> str:
    now = portal.clock()
    with portal.db.session() as s:
        inv = Invitation(
            user_name=name,
            user_name_key=name.lower(),
            email=email,
            extra_groups=extra_groups,
            invited_by=actor.name,
            existing_user=True,
            replace_login_profile=replace_login_profile,
            enforce_at=enforce_at,
            created_at=now,
            expires_at=link_expiry(portal, enforce_at),
        )
        s.add(inv)
        s.flush()
        return inv.id


# -- existing IAM users -------------------------------------------------------------------------
def access_key_warnings(portal: Portal, *, user_name: str) -> list[KeyInUse]:
    """Access keys used in the last 30 days: programs using them will need MFA sessions."""
    iam = portal.iam()
    since = portal.clock() - timedelta(days=KEY_IN_USE_DAYS)
    keys = []
    for key in iam.access_keys(user_name):
        used = iam.access_key_last_used(key["AccessKeyId"])
        if used is not None and used >= since:
            keys.append(KeyInUse(access_key_id=key["AccessKeyId"], last_used=used))
    return keys


def invite_existing_user(
    portal: Portal,
    *,
    user_name: str,
    email: str,
    deadline: datetime | None = None,
    replace_login_profile: bool = False,
    extra_groups: list[str] | None = None,
    actor: Actor,
) -> LinkResult:
    """Send an enrollment link to an IAM user the portal did not create; no user is created."""
    user_name, email, groups = validate_invite(
        portal, user_name=user_name, email=email, extra_groups=extra_groups or []
    )
    if deadline is not None and deadline <= portal.clock():
        raise ValidationError(_("Choose a deadline in the future."), field="deadline")
    iam = portal.iam()
    user = iam.get_user(user_name)
    if user is None:
        raise NotFound(
            _("There is no IAM user named {name}; invite it as a new user instead.").format(
                name=user_name
            )
        )
    name = str(user["UserName"])
    latest = latest_invitation(portal, name)
    if latest is not None and latest.status in LIVE_STATES:
        raise Conflict(
            _("{name} already has a pending enrollment link; resend it instead.").format(name=name)
        )
    keys = access_key_warnings(portal, user_name=name)
    warnings = [
        _(
            "Access key {key} was used on {when}: programs using it will need MFA session "
            "credentials (aws sts get-session-token) once {name} is in the MFA group."
        ).format(key=k.access_key_id, when=f"{k.last_used:%Y-%m-%d}", name=name)
        for k in keys
    ]
    devices = iam.mfa_devices(name)
    if devices:
        warnings.append(
            _("{name} already has {n} MFA device(s); enrolling adds one more.").format(
                name=name, n=len(devices)
            )
        )
    inv_id = _new_existing_invitation(
        portal,
        name=name,
        email=email,
        extra_groups=groups,
        replace_login_profile=replace_login_profile,
        enforce_at=deadline,
        actor=actor,
    )
    token = finish_existing(portal, invitation_id=inv_id, actor=actor)
    when = f"MFA group at {deadline:%Y-%m-%d %H:%M} UTC" if deadline else "MFA group now"
    audit.record(
        portal, actor=actor, action="send_link", target_user=name, detail=f"{email}; {when}"
    )
    result = link_result(portal, inv_id, token, reason="existing")
    return dataclasses.replace(result, keys_in_use=tuple(keys), warnings=tuple(warnings))


def finish_existing(portal: Portal, *, invitation_id: str, actor: Actor) -> str:
    """Enforce-now joins the MFA group, then the link is issued; returns the raw token."""
    with portal.db.session() as s:
        inv = s.get(Invitation, invitation_id)
        assert inv is not None
    if inv.enforce_at is None:
        try:
            ensure_in_mfa_group(portal, iam=portal.iam(), user=inv.user_name, actor=actor)
        except AwsError as exc:
            with portal.db.session() as s:
                row = s.get(Invitation, invitation_id)
                assert row is not None
                row.status, row.last_error = "failed", exc.message
            raise
    return issue_link(portal, invitation_id, expires_at=link_expiry(portal, inv.enforce_at))


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
        label = _("MFA device {serial}").format(serial=device.serial)
        method = "deactivate_mfa_device"
        steps.append(_Step(method, label, call(method, name, device.serial)))
        if device.virtual:
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
    return iam.user_resources(str(_require_user(iam, user_name)["UserName"]))


def offboard(portal: Portal, *, user_name: str, actor: Actor) -> OffboardReport:
    """Remove everything attached to the user in the order AWS requires, then the user."""
    iam = portal.iam()
    name = str(_require_user(iam, user_name)["UserName"])
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

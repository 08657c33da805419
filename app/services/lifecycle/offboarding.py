"""Offboarding: everything attached to a user removed in the order AWS requires, then the user.

A run cut short (an AWS error) says what was removed and what is left; running it again
finishes. Acts only on users the portal manages (app.services.lifecycle.ownership).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import NoReturn

from app.aws.errors import AwsError
from app.aws.iam import IamGateway, UserResources
from app.errors import Conflict, PortalError
from app.i18n import _
from app.services import audit
from app.services.lifecycle.links import revoke_live
from app.services.lifecycle.ownership import require_managed
from app.services.lifecycle.steps import delete_freed_devices, iam_step
from app.services.own_writes import OwnWrites, own_writes
from app.services.portal import Actor, Portal
from app.services.webhooks import notify, stamp
from app.store.states import WebhookEvent


@dataclass
class OffboardReport:
    user_name: str
    removed: list[str] = field(default_factory=list)


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


def with_own_writes(res: UserResources, writes: OwnWrites) -> UserResources:
    """IAM's list of what the user holds, with what the portal gave it a moment ago."""
    res.login_profile = res.login_profile or writes.login_profile
    res.mfa_devices = writes.with_devices(res.mfa_devices)
    res.groups = writes.with_groups(res.groups)
    return res


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
    # What the portal did to this user a moment ago (an invite, an enrollment) may not show in
    # IAM yet: its records add it, and calls naming it wait for it (app/services/own_writes.py).
    writes = own_writes(portal, user_name)
    name = require_managed(iam.just_created() if writes.user else iam, user_name).user_name
    if iam.caller_identity()["arn"].endswith(f":user/{name}"):
        raise Conflict(_("{name} is the portal's own AWS identity.").format(name=name))
    revoke_live(portal, user_name=name, actor=actor, why="user offboarded")
    report = OffboardReport(user_name=name)
    held = with_own_writes(iam.user_resources(name), writes)  # reads: IAM's answer stands
    doer = writes.gateway(iam)
    steps = _steps(doer, name, held)
    user_label = _("IAM user {name}").format(name=name)
    steps.append(_Step("delete_user", user_label, partial(doer.delete_user, name)))
    for step in steps:
        try:
            iam_step(
                portal,
                actor=actor,
                iam=doer,
                action=f"iam.{step.action}",
                user=name,
                detail=step.label,
                call=step.call,
            )
        except AwsError as exc:
            _offboard_failed(portal, iam, name, actor, report, exc)
        if step.label not in report.removed:
            report.removed.append(step.label)
    delete_freed_devices(portal, iam, name, actor)
    audit.record(
        portal,
        actor=actor,
        action="offboard",
        target_user=name,
        detail=f"{len(report.removed)} item(s) removed",
    )
    notify(
        portal, WebhookEvent.OFFBOARDED, key=f"{name}:{stamp(portal.clock())}", user=name,
        text=f"{name} was offboarded by {actor.name}: the IAM user and "
        f"{len(report.removed) - 1} item(s) attached to it were removed.",
    )  # fmt: skip
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

"""IAM calls the lifecycle makes one by one: each audited, each safe to repeat (a rerun finishes
what a run cut short started)."""

from __future__ import annotations

from collections.abc import Callable

from app.aws.errors import AwsError, DeleteConflict, NoSuchEntity
from app.aws.iam import IamGateway
from app.services import audit
from app.services.portal import Actor, Portal


def iam_step(
    portal: Portal,
    *,
    actor: Actor,
    iam: IamGateway,
    action: str,
    user: str,
    detail: str,
    call: Callable[[], None],
) -> bool:
    """One audited IAM call; False when it was already done (NoSuchEntity): reruns finish."""
    try:
        call()
    except NoSuchEntity:
        return False
    except AwsError as exc:
        audit.record(
            portal,
            actor=actor,
            action=action,
            target_user=user,
            outcome="failed",
            aws_request_id=exc.request_id,
            detail=f"{detail}: {exc.message}",
        )
        raise
    audit.record(
        portal,
        actor=actor,
        action=action,
        target_user=user,
        aws_request_id=iam.last_request_id,
        detail=detail,
    )
    return True


def ensure_in_mfa_group(portal: Portal, *, iam: IamGateway, user: str, actor: Actor) -> bool:
    """AddUserToGroup(MFA) unless the user is already in it; True when it was added."""
    group = portal.settings.mfa_group
    if group.lower() in {g.lower() for g in iam.groups_for_user(user)}:
        return False
    return iam_step(
        portal,
        actor=actor,
        iam=iam,
        action="iam.add_user_to_group",
        user=user,
        detail=group,
        call=lambda: iam.add_user_to_group(user, group),
    )


def delete_unassigned_device(
    portal: Portal, *, iam: IamGateway, serial: str, user_name: str, actor: Actor
) -> bool:
    """Delete a virtual device nobody has bound; a bound one is left alone."""
    try:
        iam.delete_virtual_mfa_device(serial)
    except NoSuchEntity:
        return False
    except DeleteConflict:
        return False  # bound meanwhile: it belongs to the user now
    audit.record(
        portal,
        actor=actor,
        action="iam.delete_virtual_mfa_device",
        target_user=user_name,
        aws_request_id=iam.last_request_id,
        detail=f"{serial} (unassigned)",
    )
    return True


def delete_freed_devices(portal: Portal, iam: IamGateway, name: str, actor: Actor) -> None:
    """Delete the user's devices (the portal's own) that no longer show under the user: freed by
    a run cut short between DeactivateMFADevice and DeleteVirtualMFADevice, or left by an
    enrollment."""
    for device in iam.virtual_mfa_devices("Unassigned"):
        if device.portal and device.serial.rsplit("/", 1)[-1].lower() == name.lower():
            delete_unassigned_device(
                portal, iam=iam, serial=device.serial, user_name=name, actor=actor
            )

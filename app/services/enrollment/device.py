"""The virtual MFA device: creating it (one request at a time), deleting it, the scan page.

The seed lives only in the enrollment row, encrypted, between device creation and
EnableMFADevice.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from app.aws.errors import (
    AwsError,
    DeleteConflict,
    EntityAlreadyExists,
    NoSuchEntity,
)
from app.aws.iam import IamGateway, VirtualDevice
from app.aws.ownership import DEVICE_PATH
from app.security.totp import otpauth_uri
from app.services.enrollment.account import account_info
from app.services.enrollment.errors import MAX_FAILED_TRIES, LinkUnusable
from app.services.enrollment.state import (
    enrollee,
    enrollment_ttl,
    load,
    load_on,
    needs_device,
    read_seed,
    record,
    require_open,
    secret_binding,
    seed_box,
    set_status,
    wait_while,
)
from app.services.portal import Actor, Portal
from app.store.states import EnrollmentState

log = logging.getLogger("iam_onboard.enrollment")


def delete_device(portal: Portal, iam: IamGateway, serial: str, user: str, actor: Actor) -> None:
    """Best effort: delete a device nobody has bound; AWS refuses a bound one (DeleteConflict)."""
    try:
        iam.delete_virtual_mfa_device(serial)
    except (NoSuchEntity, DeleteConflict):
        return
    except AwsError as exc:
        log.warning("could not delete unassigned MFA device of %s: %s", user, exc.code)
        return
    record(
        portal, actor, "iam.delete_virtual_mfa_device", user,
        request_id=iam.last_request_id, detail=f"{serial} (unassigned)",
    )  # fmt: skip


def device_assigned(iam: IamGateway, user: str, serial: str) -> bool | None:
    """Whether ListMFADevices shows the device bound to the user; None if IAM cannot say."""
    try:
        return any(d.serial == serial for d in iam.mfa_devices(user))
    except AwsError:
        return None


def prepare_device(portal: Portal, *, enrollment_id: str, actor: Actor) -> None:
    """Give the enrollment a device to scan: the live one, else a new one (old one deleted).

    A device younger than the TTL is kept; otherwise this request claims the creation (an
    optimistic version check, so one request creates it) and makes a new one.
    """
    now = portal.clock()
    with portal.db.session() as session:  # the checks and the claim in one transaction
        enr, inv = load_on(session, enrollment_id)
        require_open(inv)
        wants_device = needs_device(enr, now)
        if inv.expires_at <= now and wants_device:
            raise LinkUnusable()
        old_serial, user, version = enr.device_serial, enr.user_name, enr.version + 1
        claimed = wants_device and set_status(
            portal,
            enrollment_id,
            version - 1,
            session=session,
            status=EnrollmentState.STARTED,
            device_created_at=now,
            expires_at=now + enrollment_ttl(portal),
        )
    if not claimed:
        wait_while(portal, enrollment_id, EnrollmentState.STARTED)
        return
    actor = enrollee(actor, user)
    _replace_device(portal, enrollment_id, user, actor, old_serial=old_serial, version=version)


def _replace_device(
    portal: Portal,
    enrollment_id: str,
    user: str,
    actor: Actor,
    *,
    old_serial: str | None,
    version: int,
) -> None:
    """Create the device a claimed enrollment (at `version`) waits for; delete the old one."""
    iam = portal.iam()
    if old_serial:
        delete_device(portal, iam, old_serial, user, actor)
    try:
        device = _create_device(portal, iam, user, actor)
    except AwsError as exc:
        set_status(portal, enrollment_id, version, device_created_at=None)  # nobody creates now
        record(
            portal, actor, "iam.create_virtual_mfa_device", user, outcome="failed",
            request_id=exc.request_id, detail=exc.message,
        )  # fmt: skip
        raise
    request_id = iam.last_request_id
    now = portal.clock()
    sealed = seed_box(portal).encrypt(device.seed, bound_to=secret_binding(enrollment_id))
    # What AWS did is recorded with the device stored, in one transaction: the record stands
    # even when the conditional update finds the row changed (and stores nothing).
    with portal.db.session() as session:
        record(
            portal, actor, "iam.create_virtual_mfa_device", user, request_id=request_id,
            detail=device.serial, session=session,
        )  # fmt: skip
        stored = set_status(
            portal, enrollment_id, version, session=session,
            status=EnrollmentState.DEVICE_CREATED, device_serial=device.serial,
            seed_encrypted=sealed, device_created_at=now,
            expires_at=now + enrollment_ttl(portal), used_steps=[],
        )  # fmt: skip
    if not stored:
        log.warning("enrollment %s changed while its device was created", enrollment_id)


def _create_device(portal: Portal, iam: IamGateway, user: str, actor: Actor) -> VirtualDevice:
    """CreateVirtualMFADevice named after the user; a leftover unassigned one is deleted first."""
    try:
        return iam.create_virtual_mfa_device(user)
    except EntityAlreadyExists:
        pass
    suffix = f":mfa{DEVICE_PATH}{user}"  # the portal's own devices only
    leftovers = [
        d.serial for d in iam.virtual_mfa_devices("Unassigned") if d.serial.endswith(suffix)
    ]
    if leftovers:
        for serial in leftovers:
            delete_device(portal, iam, serial, user, actor)
        try:
            return iam.create_virtual_mfa_device(user)
        except EntityAlreadyExists:
            pass
    # A device of that name is bound (an existing user's own phone): never touch it, and
    # use another name (under the portal's path too).
    return iam.create_virtual_mfa_device(f"{user}-{secrets.token_hex(3)}")


# -- the scan page ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ScanDetails:
    seed: str
    otpauth_uri: str
    issuer: str
    device_serial: str


@dataclass(frozen=True)
class EnrollmentView:
    """What GET /enroll shows; `stage` is one of scan, preparing, retry, expired, checking,
    finish or done."""

    stage: str
    user_name: str
    account_label: str
    expires_at: datetime
    tries_left: int
    scan: ScanDetails | None = None


def enrollment_view(portal: Portal, *, enrollment_id: str) -> EnrollmentView:
    """The enrollment as it stands, for display; reads only."""
    enr, inv = load(portal, enrollment_id)
    if enr.status != EnrollmentState.DONE:
        require_open(inv)
    account = account_info(portal)
    now = portal.clock()
    tries_left = max(0, MAX_FAILED_TRIES - inv.failed_attempts)

    def view(stage: str, scan: ScanDetails | None = None) -> EnrollmentView:
        return EnrollmentView(stage, enr.user_name, account.label, enr.expires_at, tries_left, scan)

    simple: dict[str, str] = {
        EnrollmentState.DONE: "done",
        EnrollmentState.ENABLED: "finish",
        EnrollmentState.ENABLING: "checking",
    }
    if enr.status in simple:
        return view(simple[enr.status])
    if enr.status == EnrollmentState.STARTED:
        return view("preparing" if not needs_device(enr, now) else "retry")
    seed = (
        read_seed(portal, enr)
        if enr.status == EnrollmentState.DEVICE_CREATED and enr.expires_at > now
        else None
    )
    if seed is None or enr.device_serial is None:
        return view("expired")
    scan = ScanDetails(
        seed=seed,
        otpauth_uri=otpauth_uri(seed=seed, issuer=account.issuer, account_name=enr.user_name),
        issuer=account.issuer,
        device_serial=enr.device_serial,
    )
    return view("scan", scan)

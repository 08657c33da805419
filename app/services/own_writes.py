"""What the portal itself wrote to IAM a moment ago, read from its own records.

IAM is eventually consistent (app/aws/propagation.py): for a while after the portal creates a
user, binds a device, makes a login profile or adds a group membership, IAM may answer
NoSuchEntity or leave it out of a list. Within the propagation time the portal trusts its own
records of what it did (an enrollment done a second ago is enrolled, whatever a list says) and
waits for IAM on calls naming those entities; for anything it did not write, IAM's answer
stands. docs/architecture.md, "IAM as it really behaves".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from app.aws.iam import IamGateway, MfaDevice
from app.services.portal import Portal
from app.store.models import AuditEvent, Enrollment, Invitation
from app.store.states import EnrollmentState, InvitationState

_DEVICE_REMOVALS = ("iam.deactivate_mfa_device", "iam.delete_virtual_mfa_device")


@dataclass
class OwnWrites:
    """The portal's writes to one IAM user within the propagation time."""

    user_name: str
    user: bool = False  # CreateUser, with AddUserToGroup of the MFA group
    groups: list[str] = field(default_factory=list)  # AddUserToGroup
    devices: list[MfaDevice] = field(default_factory=list)  # EnableMFADevice
    login_profile: bool = False  # CreateLoginProfile (or a kept one checked)
    deleted: bool = False  # DeleteUser, after any of the above

    @property
    def any(self) -> bool:
        return self.user or bool(self.groups) or bool(self.devices) or self.login_profile

    def gateway(self, iam: IamGateway) -> IamGateway:
        """`iam` waiting for the portal's own writes to show, when there are any."""
        return iam.just_created() if self.any else iam

    def with_devices(self, listed: list[MfaDevice]) -> list[MfaDevice]:
        """IAM's list of the user's devices, with the ones the portal just bound."""
        seen = {d.serial for d in listed}
        return [*listed, *(d for d in self.devices if d.serial not in seen)]

    def with_groups(self, listed: list[str]) -> list[str]:
        seen = {g.lower() for g in listed}
        return [*listed, *(g for g in self.groups if g.lower() not in seen)]


def user_reader(portal: Portal, iam: IamGateway, user_name: str) -> IamGateway:
    """`iam` for calls naming the user itself: waiting for it when the portal has just created
    it, IAM's answer as it is otherwise."""
    return iam.just_created() if own_writes(portal, user_name).user else iam


def device_reader(
    portal: Portal, iam: IamGateway, *, user_name: str, serial: str, made_at: datetime | None
) -> IamGateway:
    """`iam` for calls naming a device the portal made at `made_at`: waiting for it while IAM
    may not show it yet, unless the portal has removed it since (then IAM's answer stands)."""
    if made_at is None or not recent(portal, made_at):
        return iam
    with portal.db.session() as session:
        removed = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action.in_(_DEVICE_REMOVALS), AuditEvent.at >= made_at)
            .where(func.lower(AuditEvent.target_user) == user_name.lower())
            .where(AuditEvent.detail.contains(serial, autoescape=True))
        )
    return iam if removed else iam.just_created()


def cutoff(portal: Portal) -> datetime:
    return portal.clock() - timedelta(seconds=portal.settings.iam_propagation_seconds)


def recent(portal: Portal, when: datetime | None) -> bool:
    """Whether a write the portal made at `when` may still be unseen by IAM's readers."""
    return when is not None and when >= cutoff(portal)


def own_writes(portal: Portal, user_name: str) -> OwnWrites:
    """The portal's recent writes to this user (IAM user names ignore case)."""
    found = recent_own_writes(portal, user_name=user_name)
    return found.get(user_name.lower(), OwnWrites(user_name))


# What the portal does to undo its writes: after one of these (answered or not), the portal no
# longer knows better than IAM whether the entity is there.
_REMOVALS = (
    "iam.delete_user",
    "iam.deactivate_mfa_device",
    "iam.delete_virtual_mfa_device",
    "iam.delete_login_profile",
    "iam.remove_user_from_group",
)


@dataclass(frozen=True)
class _Removal:
    action: str
    at: datetime
    ok: bool
    detail: str


def recent_own_writes(portal: Portal, *, user_name: str | None = None) -> dict[str, OwnWrites]:
    """Every user the portal wrote to within the propagation time, by lower-cased name."""
    since = cutoff(portal)
    with portal.db.session() as session:
        query = (
            select(Invitation)
            .where(or_(Invitation.created_at >= since, Invitation.used_at >= since))
            # A failed invite made no user; a revoked one did (what was removed since is
            # read from the audit log below).
            .where(Invitation.status != InvitationState.FAILED)
        )
        if user_name is not None:
            query = query.where(Invitation.user_name_key == user_name.lower())
        invitations = list(session.scalars(query))
        enrollments = list(
            session.scalars(
                select(Enrollment)
                .where(Enrollment.invitation_id.in_([i.id for i in invitations]))
                .where(Enrollment.enabled_at >= since)
                .where(Enrollment.status.in_((EnrollmentState.ENABLED, EnrollmentState.DONE)))
            )
        )
        # What the portal removed since (offboard, reset, revoke, a rolled-back invite).
        undone = select(AuditEvent).where(AuditEvent.action.in_(_REMOVALS), AuditEvent.at >= since)
        if user_name is not None:
            undone = undone.where(func.lower(AuditEvent.target_user) == user_name.lower())
        removals: dict[str, list[_Removal]] = {}
        for event in session.scalars(undone):
            removal = _Removal(event.action, event.at, event.outcome == "ok", event.detail or "")
            removals.setdefault(str(event.target_user or "").lower(), []).append(removal)
    found = _collect(portal, invitations, enrollments, since, removals)
    for key, events in removals.items():
        if key not in found and any(r.action == "iam.delete_user" and r.ok for r in events):
            found[key] = OwnWrites(key, deleted=True)
    return found


def _collect(
    portal: Portal,
    invitations: Iterable[Invitation],
    enrollments: Iterable[Enrollment],
    since: datetime,
    removals: dict[str, list[_Removal]],
) -> dict[str, OwnWrites]:
    """The writes, each kept only while no removal of that entity came after it."""
    by_name: dict[str, OwnWrites] = {}
    by_invitation: dict[str, Invitation] = {}
    mfa_group = portal.settings.mfa_group

    def undone(key: str, after: datetime, *actions: str, serial: str = "") -> bool:
        return any(
            r.action in actions and r.at >= after and serial in r.detail
            for r in removals.get(key, [])
        )

    for inv in invitations:
        key = inv.user_name_key
        writes = by_name.setdefault(key, OwnWrites(inv.user_name))
        by_invitation[inv.id] = inv
        if undone(key, inv.created_at, "iam.delete_user"):
            deleted = [r for r in removals[key] if r.action == "iam.delete_user" and r.ok]
            writes.deleted = writes.deleted or bool(deleted)
            continue  # the user itself was (or may have been) deleted after this invitation
        groups_undone = undone(key, inv.created_at, "iam.remove_user_from_group")
        if not inv.existing_user and inv.created_at >= since:
            writes.user = True
        # An invite puts its user in the MFA group; so does a link to an existing user that
        # enforces MFA now (app/services/lifecycle/adoption.py, finish_existing).
        joined = not inv.existing_user or inv.enforce_at is None
        if joined and inv.created_at >= since and not groups_undone:
            writes.groups = writes.with_groups([mfa_group])
        used_at = inv.used_at
        if inv.status == InvitationState.USED and used_at is not None and used_at >= since:
            if not undone(key, used_at, "iam.delete_login_profile"):
                writes.login_profile = True
            if not undone(key, used_at, "iam.remove_user_from_group"):
                enforced = [mfa_group] if inv.enforce_at is not None else []
                writes.groups = writes.with_groups([*enforced, *inv.extra_groups])
    for enr in enrollments:
        inv = by_invitation[enr.invitation_id]
        key, serial, bound_at = inv.user_name_key, enr.device_serial, enr.enabled_at
        if not serial or bound_at is None:
            continue
        removed = undone(
            key, bound_at, "iam.delete_user", "iam.deactivate_mfa_device",
            "iam.delete_virtual_mfa_device", serial=serial,
        )  # fmt: skip
        if not removed and not undone(key, bound_at, "iam.delete_user"):
            writes = by_name[key]
            bound = MfaDevice(serial, writes.user_name, bound_at, virtual=True)
            writes.devices = writes.with_devices([bound])
    # A user deleted after all of it: lists may still show it for a moment.
    for writes in by_name.values():
        if writes.deleted and writes.any:
            writes.deleted = False  # re-created since (a new invitation after the deletion)
    return by_name


def add_to_listing(
    portal: Portal,
    users: list[dict[str, Any]],
    members: set[str],
    devices: dict[str, list[str]],
) -> None:
    """Add to a whole-account read (ListUsers, the MFA group's members, the assigned devices)
    what the portal wrote a moment ago and those lists may not show yet."""
    listed = {str(u["UserName"]).lower(): str(u["UserName"]) for u in users}
    mfa_group = portal.settings.mfa_group.lower()
    for key, writes in recent_own_writes(portal).items():
        if writes.deleted:  # IAM may still list a user deleted a moment ago
            users[:] = [u for u in users if str(u["UserName"]).lower() != key]
            members.difference_update({m for m in members if m.lower() == key})
            for name in [n for n in devices if n.lower() == key]:
                del devices[name]
            continue
        if key not in listed:
            if not writes.user:
                continue  # not listed and not just created: IAM's answer (gone) stands
            users.append({"UserName": writes.user_name})
            listed[key] = writes.user_name
        name = listed[key]
        if any(g.lower() == mfa_group for g in writes.groups):
            members.add(name)
        serials = devices.setdefault(name, [])
        serials += [d.serial for d in writes.devices if d.serial not in serials]
        if not serials:
            del devices[name]

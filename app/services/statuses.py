"""The dashboard statuses (docs/architecture.md, "Statuses") and the rules giving each user one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.errors import ValidationError
from app.i18n import _
from app.store.states import (
    BOUND_ENROLLMENT,
    LIVE_ENROLLMENT,
    EnrollmentState,
    InvitationState,
    UserStatus,
)

INVITED = UserStatus.INVITED
INVITE_EXPIRED = UserStatus.INVITE_EXPIRED
ENROLLING = UserStatus.ENROLLING
LOCKED = UserStatus.LOCKED
ENROLLED = UserStatus.ENROLLED
REVOKED = UserStatus.REVOKED
NO_MFA = UserStatus.NO_MFA
MFA_UNMANAGED = UserStatus.MFA_UNMANAGED
OUTSIDE_MFA_GROUP = UserStatus.OUTSIDE_MFA_GROUP

# Display and default sort order: what needs an admin first (expired invitations above all).
STATUSES = (
    INVITE_EXPIRED,
    LOCKED,
    NO_MFA,
    OUTSIDE_MFA_GROUP,
    ENROLLING,
    INVITED,
    ENROLLED,
    MFA_UNMANAGED,
    REVOKED,
)
ORDER: dict[str, int] = {status: index for index, status in enumerate(STATUSES)}

# What a status asks of an admin, which colours its pill: bad (act now), warn (waiting or
# partly protected), ok (MFA in place), off (nothing to do). The pill always shows its text too.
TONES: dict[str, str] = {
    INVITE_EXPIRED: "bad",
    LOCKED: "bad",
    NO_MFA: "bad",
    OUTSIDE_MFA_GROUP: "warn",
    ENROLLING: "warn",
    INVITED: "warn",
    ENROLLED: "ok",
    MFA_UNMANAGED: "ok",
    REVOKED: "off",
}

# Invitation states that say something about the user; `creating` and `failed` do not
# (a failed invite of a name that already existed must not make that user "managed").
MEANINGFUL_INVITATION = (
    InvitationState.PENDING,
    InvitationState.USED,
    InvitationState.EXPIRED,
    InvitationState.REVOKED,
)


def status_label(status: str) -> str:
    """The status as a person reads it, in the current language."""
    labels: dict[str, str] = {
        INVITED: _("invited"),
        INVITE_EXPIRED: _("invite expired"),
        ENROLLING: _("enrolling"),
        LOCKED: _("locked"),
        ENROLLED: _("enrolled"),
        REVOKED: _("revoked"),
        NO_MFA: _("no MFA"),
        MFA_UNMANAGED: _("MFA (unmanaged)"),
        OUTSIDE_MFA_GROUP: _("outside MFA group"),
    }
    return labels.get(status, status)


def status_tone(status: str) -> str:
    """The pill colour of a status: bad, warn, ok or off (app.css `.status-*`)."""
    return TONES.get(status, "off")


def state_label(state: str) -> str:
    """An invitation's or an enrollment's stored state as a person reads it."""
    labels: dict[str, str] = {
        InvitationState.CREATING: _("creating"),
        InvitationState.PENDING: _("pending"),
        InvitationState.USED: _("used"),
        InvitationState.EXPIRED: _("expired"),  # an enrollment's too
        InvitationState.REVOKED: _("revoked"),
        InvitationState.FAILED: _("failed"),
        EnrollmentState.STARTED: _("started"),
        EnrollmentState.DEVICE_CREATED: _("device created"),
        EnrollmentState.ENABLING: _("enabling"),
        EnrollmentState.ENABLED: _("enabled"),
        EnrollmentState.DONE: _("done"),
        EnrollmentState.LOCKED: _("locked"),
    }
    return labels.get(state, state)


def status_slug(status: str) -> str:
    """`invite expired` -> `invite_expired`, `MFA (unmanaged)` -> `mfa_unmanaged`."""
    chars = [ch if ch.isalnum() else "_" for ch in status.lower()]
    return "_".join(part for part in "".join(chars).split("_") if part)


def parse_status(value: str) -> str:
    """Accept a status as written (`invite expired`) or as a slug (`invite_expired`)."""
    wanted = status_slug(value)
    for status in STATUSES:
        if status_slug(status) == wanted:
            return status
    raise ValidationError(
        _("Unknown status {status}; use one of: {choices}.").format(
            status=value, choices=", ".join(STATUSES)
        ),
        field="status",
    )


@dataclass(frozen=True)
class InvitationFacts:
    id: str
    user_name: str
    email: str
    status: str
    invited_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    locked_at: datetime | None


@dataclass(frozen=True)
class EnrollmentFacts:
    status: str
    expires_at: datetime
    enabled_at: datetime | None


def compute_status(
    *,
    invitation: InvitationFacts | None,
    enrollment: EnrollmentFacts | None,
    has_mfa: bool,
    in_mfa_group: bool,
    now: datetime,
) -> str:
    """The dashboard status of one user; the first rule that matches wins."""
    if invitation is not None:
        # Users the portal invited follow their latest invitation: the row is current,
        # while the IAM snapshot may be hours old (a reset device still shows there).
        if invitation.status == InvitationState.REVOKED:
            return REVOKED
        if invitation.status == InvitationState.USED:
            return ENROLLED
        if invitation.locked_at is not None:
            return LOCKED
        if enrollment is not None and enrollment.status in LIVE_ENROLLMENT:
            # Once the device is being bound, only finishing is left: the TTL no longer counts.
            bound = enrollment.status in BOUND_ENROLLMENT
            if bound or enrollment.expires_at > now:
                return ENROLLING
        if invitation.status == InvitationState.EXPIRED or invitation.expires_at <= now:
            return INVITE_EXPIRED
        return INVITED
    return iam_status(has_mfa=has_mfa, in_mfa_group=in_mfa_group)


def iam_status(*, has_mfa: bool, in_mfa_group: bool) -> str:
    """The status of a user the portal did not invite, from what IAM says alone.

    No MFA at all is the most urgent; MFA outside the MFA group is not enforced by the group's
    deny-until-MFA policy; the rest is fine. Stored at each refresh (directory_users.iam_status)
    so the dashboard filters and counts in SQL.
    """
    if not has_mfa:
        return NO_MFA
    if not in_mfa_group:
        return OUTSIDE_MFA_GROUP
    return MFA_UNMANAGED

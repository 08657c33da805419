"""The states an invitation and an enrollment go through, named once.

StrEnum members are the stored strings (`InvitationState.PENDING == "pending"`), so rows
written before, queries, JSON and templates read them unchanged.

An invitation:  creating -> pending -> used;  or revoked, expired, failed.
An enrollment:  started -> device_created -> enabling -> enabled -> done;  or expired, locked
(a resend of a locked or expired link starts the same row over).
A user on the dashboard: one UserStatus (app/services/statuses.py gives the rules).
"""

from __future__ import annotations

from enum import StrEnum


class InvitationState(StrEnum):
    CREATING = "creating"  # the IAM user is being made and put in the MFA group
    PENDING = "pending"  # the link is out, waiting for the new hire
    USED = "used"  # the new hire finished
    REVOKED = "revoked"
    EXPIRED = "expired"
    FAILED = "failed"  # the invite could not create the user (e.g. the name was taken)


class EnrollmentState(StrEnum):
    STARTED = "started"  # the link was opened; a device is being made
    DEVICE_CREATED = "device_created"  # the QR code can be scanned
    ENABLING = "enabling"  # EnableMFADevice is running
    ENABLED = "enabled"  # MFA is bound; groups and the console password come next
    DONE = "done"
    EXPIRED = "expired"
    LOCKED = "locked"  # too many wrong codes


class WebhookEvent(StrEnum):
    """What the webhook tells (IAM_ONBOARD_WEBHOOK_URL); the JSON format's `event` field."""

    ENROLLED = "enrolled"
    LOCKED = "enrollment.locked"  # too many wrong codes
    EXPIRED = "invitation.expired"  # the link ran out unused
    DEADLINE = "deadline.passed"  # an existing user's grace period ran out: MFA group now
    OFFBOARDED = "offboarded"


class UserStatus(StrEnum):
    """A user's status on the dashboard and in the API (stored in directory_users)."""

    INVITED = "invited"
    INVITE_EXPIRED = "invite expired"
    ENROLLING = "enrolling"
    LOCKED = "locked"
    ENROLLED = "enrolled"
    REVOKED = "revoked"
    NO_MFA = "no MFA"
    MFA_UNMANAGED = "MFA (unmanaged)"
    OUTSIDE_MFA_GROUP = "outside MFA group"


# An invitation in one of these states still holds its user name.
LIVE_INVITATION = (InvitationState.CREATING, InvitationState.PENDING)
# Between opening the link and finishing.
LIVE_ENROLLMENT = (
    EnrollmentState.STARTED,
    EnrollmentState.DEVICE_CREATED,
    EnrollmentState.ENABLING,
    EnrollmentState.ENABLED,
)
# The device is bound, or being bound: only finishing is left.
BOUND_ENROLLMENT = (EnrollmentState.ENABLING, EnrollmentState.ENABLED)

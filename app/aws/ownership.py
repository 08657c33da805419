"""What marks an IAM user or an MFA device as the portal's: its tags and its device path.

The runtime policy (app/aws/policy_documents.py) and the services use the same names, so what
the code checks and what IAM enforces cannot drift apart.
"""

from __future__ import annotations

import re

MANAGED_TAG = "iam-onboard:managed"  # "true": a user the portal created or adopted
INVITATION_TAG = "iam-onboard:invitation"
EMAIL_TAG = "iam-onboard:email"
PROTECTED_TAG = "iam-onboard:protected"  # "true": never touched by the portal (break-glass, admins)
# The only tag keys the portal ever writes; its policy lets it write no other.
PORTAL_TAG_KEYS = (MANAGED_TAG, EMAIL_TAG, INVITATION_TAG)

# The portal creates (and deletes) virtual MFA devices under this path only.
DEVICE_PATH = "/iam-onboard/"

_PORTAL_DEVICE = re.compile(
    r"arn:aws[a-z-]*:iam::\d{12}:mfa" + re.escape(DEVICE_PATH) + r"[\w+=,.@-]+"
)


def is_portal_device(serial: str) -> bool:
    """Whether a device serial is a virtual device the portal created (under DEVICE_PATH).

    Only those may the portal delete; a user's other devices it may deactivate, never delete.
    """
    return _PORTAL_DEVICE.fullmatch(serial) is not None


def is_true_tag(value: str | None) -> bool:
    """A tag's value read as IAM's StringEqualsIgnoreCase "true" reads it."""
    return value is not None and value.lower() == "true"

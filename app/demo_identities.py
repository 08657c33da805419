"""The demo's AWS identities when the sandbox enforces IAM policies (`demo --iam-enforce-policies`).

The sandbox's administrator (`sandbox-admin`, AdministratorAccess, a published key) bootstraps
the account; the portal then runs as its own IAM user holding only the runtime policy, so a
portal call its policy does not allow fails in the demo as it would on AWS.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.aws.client import make_clients
from app.aws.policy_documents import runtime_policy
from app.config import Settings
from app.sandbox import SANDBOX_ACCOUNT_ID, Sandbox
from app.sandbox.enforcement import (
    ADMIN_ACCESS_KEY_ID,
    ADMIN_SECRET_ACCESS_KEY,
    provision_user_with_policy,
)
from app.services.portal import Portal

PORTAL_USER = "iam-onboard-portal"
PORTAL_POLICY_NAME = "iam-onboard-runtime"
ADMIN_KEYS = {
    "aws_access_key_id": ADMIN_ACCESS_KEY_ID,
    "aws_secret_access_key": ADMIN_SECRET_ACCESS_KEY,
}


def portal_runtime_policy(settings: Settings) -> dict[str, Any]:
    """The policy the demo's portal identity holds: `iam-onboard policy runtime`'s."""
    return runtime_policy(settings)


def as_admin(portal: Portal, sandbox: Sandbox) -> Portal:
    """The same portal, calling the sandbox with the administrator's key."""
    clients = make_clients(portal.settings, endpoint=sandbox.url, credentials=ADMIN_KEYS)
    return replace(portal, iam_clients=clients)


def as_runtime_identity(portal: Portal, sandbox: Sandbox) -> Portal:
    """The same portal, calling the sandbox as `iam-onboard-portal` with the runtime policy."""
    document = portal_runtime_policy(portal.settings)
    key_id, secret = provision_user_with_policy(
        SANDBOX_ACCOUNT_ID, PORTAL_USER, PORTAL_POLICY_NAME, document
    )
    credentials = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    clients = make_clients(portal.settings, endpoint=sandbox.url, credentials=credentials)
    return replace(portal, iam_clients=clients)

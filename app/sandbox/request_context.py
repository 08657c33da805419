"""What IAM authorizes for one request: the action, its resource ARN and the condition keys.

The resource of each action follows the Service Authorization Reference ("Actions, resources,
and condition keys for AWS Identity and Access Management"): user actions on the user's ARN
(the caller when UserName is optional and absent), AddUserToGroup/RemoveUserFromGroup/GetGroup
on the group's ARN, virtual MFA devices on `arn:aws:iam::<acct>:mfa<path><name>`, policy
actions on the policy's ARN, and `*` for the account-wide ones (ListUsers, the password
policy, the credential report...). sts:GetCallerIdentity and sts:GetSessionToken are `*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moto.iam.models import IAMBackend

from app.sandbox.policy_eval import Request

# Actions whose resource is `*` (no resource type in the Service Authorization Reference).
ACCOUNT_ACTIONS = frozenset(
    {
        "ListUsers",
        "ListGroups",
        "ListPolicies",
        "ListRoles",
        "ListVirtualMFADevices",
        "GetAccountPasswordPolicy",
        "UpdateAccountPasswordPolicy",
        "DeleteAccountPasswordPolicy",
        "GenerateCredentialReport",
        "GetCredentialReport",
        "ListAccountAliases",
        "CreateAccountAlias",
        "DeleteAccountAlias",
        "GetAccountSummary",
        "GetAccountAuthorizationDetails",
    }
)
GROUP_ACTIONS_WITH_USER = frozenset({"AddUserToGroup", "RemoveUserFromGroup"})
# User actions whose UserName is optional: without it, IAM acts on the caller.
CALLER_DEFAULT_ACTIONS = frozenset(
    {
        "GetUser",
        "ChangePassword",
        "CreateAccessKey",
        "ListAccessKeys",
        "UpdateAccessKey",
        "DeleteAccessKey",
        "ListMFADevices",
        "DeactivateMFADevice",
        "ListSigningCertificates",
        "ListSSHPublicKeys",
        "ListServiceSpecificCredentials",
    }
)
USER_POLICY_ACTIONS = frozenset(
    {"AttachUserPolicy", "DetachUserPolicy", "PutUserPermissionsBoundary"}
)
GROUP_POLICY_ACTIONS = frozenset({"AttachGroupPolicy", "DetachGroupPolicy"})


@dataclass(frozen=True)
class Caller:
    """Who signed the request: an IAM user, by long-term key or by session credentials."""

    user_name: str
    user_arn: str
    user_id: str
    mfa_present: bool | None = None  # None: a long-term key carries no MFA key at all
    mfa_age_seconds: int | None = None

    def context(self, account: str) -> dict[str, str]:
        keys = {
            "aws:username": self.user_name,
            "aws:userid": self.user_id,
            "aws:principalarn": self.user_arn,
            "aws:principalaccount": account,
            "aws:principaltype": "User",
        }
        if self.mfa_present is not None:
            keys["aws:multifactorauthpresent"] = str(self.mfa_present).lower()
        if self.mfa_age_seconds is not None:
            keys["aws:multifactorauthage"] = str(self.mfa_age_seconds)
        return keys


def request_tags(params: Mapping[str, str]) -> dict[str, str]:
    """Tags.member.N.Key/Value of the query protocol."""
    tags: dict[str, str] = {}
    index = 1
    while f"Tags.member.{index}.Key" in params:
        tags[params[f"Tags.member.{index}.Key"]] = params.get(f"Tags.member.{index}.Value", "")
        index += 1
    return tags


def _members(params: Mapping[str, str], name: str) -> list[str]:
    values: list[str] = []
    while f"{name}.member.{len(values) + 1}" in params:
        values.append(params[f"{name}.member.{len(values) + 1}"])
    return values


def _user_arn(backend: IAMBackend, account: str, name: str, path: str | None = None) -> str:
    user = backend.users.get(name)
    return f"arn:aws:iam::{account}:user{path or (user.path if user else '/')}{name}"


def _group_arn(backend: IAMBackend, account: str, name: str) -> str:
    group = backend.groups.get(name)
    return f"arn:aws:iam::{account}:group{group.path if group else '/'}{name}"


def _user_tag_keys(backend: IAMBackend, name: str) -> dict[str, str]:
    user = backend.users.get(name)
    if user is None:
        return {}
    keys: dict[str, str] = {}
    for key, value in backend.tagger.get_tag_dict_for_resource(user.arn).items():
        keys[f"iam:resourcetag/{key.lower()}"] = value
        keys[f"aws:resourcetag/{key.lower()}"] = value
    return keys


def iam_requests(
    action: str,
    params: Mapping[str, str],
    caller: Caller,
    backend: IAMBackend,
    account: str,
) -> list[Request]:
    """The authorizations one IAM call needs (CreateUser with tags also needs iam:TagUser)."""
    context: dict[str, Any] = caller.context(account)
    user_name = params.get("UserName")
    if action in CALLER_DEFAULT_ACTIONS and not user_name:
        user_name = caller.user_name
    tags = request_tags(params)
    if tags:
        context.update({f"aws:requesttag/{k.lower()}": v for k, v in tags.items()})
        context["aws:tagkeys"] = list(tags)
    if action == "UntagUser":
        context["aws:tagkeys"] = _members(params, "TagKeys")
    if "PolicyArn" in params and (action in USER_POLICY_ACTIONS | GROUP_POLICY_ACTIONS):
        context["iam:policyarn"] = params["PolicyArn"]

    resource = "*"
    if action in ACCOUNT_ACTIONS:
        resource = "*"
    elif action in GROUP_ACTIONS_WITH_USER or action in GROUP_POLICY_ACTIONS:
        resource = _group_arn(backend, account, params.get("GroupName", ""))
    elif action in ("CreateVirtualMFADevice",):
        path = params.get("Path") or "/"
        resource = f"arn:aws:iam::{account}:mfa{path}{params.get('VirtualMFADeviceName', '')}"
    elif action == "DeleteVirtualMFADevice":
        resource = params.get("SerialNumber", "*")
    elif action == "CreatePolicy":
        path = params.get("Path") or "/"
        resource = f"arn:aws:iam::{account}:policy{path}{params.get('PolicyName', '')}"
    elif action == "CreateUser":
        resource = _user_arn(backend, account, user_name or "", params.get("Path") or "/")
    elif user_name:
        resource = _user_arn(backend, account, user_name)
        context.update(_user_tag_keys(backend, user_name))
    elif "GroupName" in params:
        resource = _group_arn(backend, account, params["GroupName"])
    elif "PolicyArn" in params:
        resource = params["PolicyArn"]
    elif "SerialNumber" in params:
        resource = params["SerialNumber"]

    requests = [Request(f"iam:{action}", resource, context)]
    if tags and action == "CreateUser":
        requests.append(Request("iam:TagUser", resource, context))
    if tags and action == "CreateVirtualMFADevice":
        requests.append(Request("iam:TagMFADevice", resource, context))
    return requests

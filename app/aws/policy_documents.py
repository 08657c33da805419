"""The portal's IAM policies, built from the settings: runtime, bootstrap and the MFA group's.

Pure functions (no AWS calls); `iam-onboard policy runtime|bootstrap|mfa` prints them, and
docs/mfa-policy.md explains each statement. The portal acts only on users tagged
`iam-onboard:managed=true` and never on users tagged `iam-onboard:protected=true`; these
documents make IAM itself say so, so a bug in the portal's code still meets a "no".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.aws.ownership import DEVICE_PATH, MANAGED_TAG, PORTAL_TAG_KEYS, PROTECTED_TAG

if TYPE_CHECKING:
    from app.config import Settings

PolicyDocument = dict[str, Any]

VERSION = "2012-10-17"
USERS = "arn:aws:iam::*:user/*"
PORTAL_DEVICES = f"arn:aws:iam::*:mfa{DEVICE_PATH}*"
# The AWS managed policies that hand out (or can hand out) the whole account; doctor lists who
# holds them without the protected tag.
ADMIN_POLICIES = (
    "arn:aws:iam::aws:policy/AdministratorAccess",
    "arn:aws:iam::aws:policy/IAMFullAccess",
)

DESCRIPTIONS = {
    "runtime": "iam-onboard portal: manages only users tagged iam-onboard:managed=true, "
    "never users tagged iam-onboard:protected=true",
    "bootstrap": "iam-onboard bootstrap: creates and updates only the MFA policy and group",
    "mfa": "Denies everything but password change and getting an MFA session "
    "until signed in with MFA",
}

# Reads of a user the portal looks at (its dashboard, a user's page, the offboarding list). They
# stay open on protected users too: the portal must see the protected tag to leave them alone.
_USER_READS = (
    "iam:GetUser",
    "iam:ListUserTags",
    "iam:ListGroupsForUser",
    "iam:ListAttachedUserPolicies",
    "iam:ListUserPolicies",
    "iam:ListMFADevices",
    "iam:GetLoginProfile",
    "iam:ListAccessKeys",
    "iam:GetAccessKeyLastUsed",
    "iam:ListSigningCertificates",
    "iam:ListSSHPublicKeys",
    "iam:ListServiceSpecificCredentials",
)

# Every change the portal makes to an existing user or its credentials (offboarding, reset,
# enrollment): only on users it manages.
_MANAGED_USER_CHANGES = (
    "iam:DeleteUser",
    "iam:DetachUserPolicy",
    "iam:DeleteUserPolicy",
    "iam:EnableMFADevice",
    "iam:DeactivateMFADevice",
    "iam:CreateLoginProfile",
    "iam:DeleteLoginProfile",
    "iam:DeleteAccessKey",
    "iam:DeleteSigningCertificate",
    "iam:DeleteSSHPublicKey",
    "iam:DeleteServiceSpecificCredential",
)


def _group_arns(names: list[str]) -> list[str]:
    # Group names are unique in an account whatever their path, so `group/*/<name>` can only be
    # that same group when it was created under a path.
    arns: list[str] = []
    for name in dict.fromkeys(names):
        arns += [f"arn:aws:iam::*:group/{name}", f"arn:aws:iam::*:group/*/{name}"]
    return arns


def runtime_policy(settings: Settings) -> PolicyDocument:
    """The portal's own identity: what `serve` (and doctor) call, bounded to what it owns."""
    managed = {"StringEquals": {f"iam:ResourceTag/{MANAGED_TAG}": "true"}}
    protected = {"StringEqualsIgnoreCase": {f"iam:ResourceTag/{PROTECTED_TAG}": "true"}}
    groups = _group_arns([settings.mfa_group, *settings.assignable_groups])
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "ReadAccount",
                "Effect": "Allow",
                "Action": [
                    "sts:GetCallerIdentity",
                    "iam:ListAccountAliases",
                    "iam:GetAccountPasswordPolicy",
                    "iam:GenerateCredentialReport",
                    "iam:GetCredentialReport",
                    "iam:ListUsers",
                    "iam:ListVirtualMFADevices",
                ],
                "Resource": "*",
            },
            {"Sid": "ReadUsers", "Effect": "Allow", "Action": list(_USER_READS), "Resource": USERS},
            {
                "Sid": "CreateOnlyManagedUsers",
                "Effect": "Allow",
                "Action": "iam:CreateUser",
                "Resource": USERS,
                "Condition": {"StringEquals": {f"aws:RequestTag/{MANAGED_TAG}": "true"}},
            },
            {
                # Tags on CreateUser and adoption of an existing user ("send-link"); the
                # portal writes its own tag keys and no other.
                "Sid": "WriteOnlyThePortalsTags",
                "Effect": "Allow",
                "Action": "iam:TagUser",
                "Resource": USERS,
                "Condition": {
                    "ForAllValues:StringEquals": {"aws:TagKeys": list(PORTAL_TAG_KEYS)},
                    "Null": {"aws:TagKeys": "false"},
                },
            },
            {
                "Sid": "ChangeOnlyManagedUsers",
                "Effect": "Allow",
                "Action": list(_MANAGED_USER_CHANGES),
                "Resource": USERS,
                "Condition": managed,
            },
            {
                # These authorize against the group, so no user tag can bound them: the group
                # list can.
                "Sid": "MembershipOfTheMFAAndAssignableGroupsOnly",
                "Effect": "Allow",
                "Action": ["iam:AddUserToGroup", "iam:RemoveUserFromGroup"],
                "Resource": groups,
            },
            {
                "Sid": "ReadGroups",
                "Effect": "Allow",
                "Action": ["iam:GetGroup", "iam:ListAttachedGroupPolicies"],
                "Resource": "arn:aws:iam::*:group/*",
            },
            {
                "Sid": "DevicesUnderThePortalsPathOnly",
                "Effect": "Allow",
                "Action": ["iam:CreateVirtualMFADevice", "iam:DeleteVirtualMFADevice"],
                "Resource": PORTAL_DEVICES,
            },
            {
                "Sid": "ReadManagedPolicies",
                "Effect": "Allow",
                "Action": ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"],
                "Resource": "arn:aws:iam::*:policy/*",
            },
            {
                "Sid": "FindAdministrators",
                "Effect": "Allow",
                "Action": "iam:ListEntitiesForPolicy",
                "Resource": list(ADMIN_POLICIES),
            },
            {
                # Everything but reads, whatever another policy of this identity allows.
                "Sid": "NeverChangeProtectedUsers",
                "Effect": "Deny",
                "NotAction": ["iam:Get*", "iam:List*"],
                "Resource": USERS,
                "Condition": protected,
            },
            {
                "Sid": "NeverWriteTheProtectedTag",
                "Effect": "Deny",
                "Action": ["iam:CreateUser", "iam:TagUser", "iam:UntagUser"],
                "Resource": USERS,
                "Condition": {
                    "ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": [PROTECTED_TAG]}
                },
            },
        ],
    }


def bootstrap_policy(settings: Settings) -> PolicyDocument:
    """What `iam-onboard bootstrap` calls: the MFA policy and the MFA group, nothing else."""
    policy = f"arn:aws:iam::*:policy/{settings.mfa_policy}"
    group = f"arn:aws:iam::*:group/{settings.mfa_group}"
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "IdentifyAccount",
                "Effect": "Allow",
                "Action": "sts:GetCallerIdentity",
                "Resource": "*",
            },
            {
                "Sid": "CreateAndUpdateTheMFAPolicy",
                "Effect": "Allow",
                "Action": [
                    "iam:CreatePolicy",
                    "iam:GetPolicy",
                    "iam:CreatePolicyVersion",
                    "iam:GetPolicyVersion",
                    "iam:ListPolicyVersions",
                    "iam:DeletePolicyVersion",
                ],
                "Resource": policy,
            },
            {
                "Sid": "CreateTheMFAGroup",
                "Effect": "Allow",
                "Action": ["iam:CreateGroup", "iam:GetGroup", "iam:ListAttachedGroupPolicies"],
                "Resource": group,
            },
            {
                "Sid": "AttachOnlyTheMFAPolicyToIt",
                "Effect": "Allow",
                "Action": "iam:AttachGroupPolicy",
                "Resource": group,
                "Condition": {"ArnLike": {"iam:PolicyARN": policy}},
            },
        ],
    }


def mfa_policy() -> PolicyDocument:
    """The MFA group's policy: without MFA, only what it takes to get an MFA session."""
    own_user = "arn:aws:iam::*:user/${aws:username}"
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "AllowViewAccountPasswordPolicy",
                "Effect": "Allow",
                "Action": "iam:GetAccountPasswordPolicy",
                "Resource": "*",
            },
            {
                "Sid": "AllowListVirtualMFADevices",
                "Effect": "Allow",
                "Action": "iam:ListVirtualMFADevices",
                "Resource": "*",
            },
            {
                "Sid": "AllowManageOwnPassword",
                "Effect": "Allow",
                "Action": ["iam:ChangePassword", "iam:GetUser"],
                "Resource": own_user,
            },
            {
                "Sid": "AllowManageOwnAccessKeys",
                "Effect": "Allow",
                "Action": [
                    "iam:CreateAccessKey",
                    "iam:DeleteAccessKey",
                    "iam:GetAccessKeyLastUsed",
                    "iam:ListAccessKeys",
                    "iam:UpdateAccessKey",
                ],
                "Resource": own_user,
            },
            {
                "Sid": "AllowCreateVirtualMFADevice",
                "Effect": "Allow",
                "Action": "iam:CreateVirtualMFADevice",
                "Resource": "arn:aws:iam::*:mfa/*",
            },
            {
                "Sid": "AllowManageOwnMFA",
                "Effect": "Allow",
                "Action": ["iam:EnableMFADevice", "iam:ListMFADevices", "iam:ResyncMFADevice"],
                "Resource": own_user,
            },
            {
                "Sid": "AllowDeactivateOwnMFAOnlyWhenSignedInWithMFA",
                "Effect": "Allow",
                "Action": "iam:DeactivateMFADevice",
                "Resource": own_user,
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
            },
            {
                # The portal's device path is the portal's: a device there is one it may delete.
                "Sid": "DenyDevicesUnderThePortalsPath",
                "Effect": "Deny",
                "Action": "iam:CreateVirtualMFADevice",
                "Resource": PORTAL_DEVICES,
            },
            {
                "Sid": "BlockMostAccessUnlessSignedInWithMFA",
                "Effect": "Deny",
                "NotAction": [
                    "sts:GetSessionToken",
                    "iam:GetUser",
                    "iam:ChangePassword",
                    "iam:GetAccountPasswordPolicy",
                    "iam:ResyncMFADevice",
                ],
                "Resource": "*",
                "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
            },
        ],
    }


def policy_for(kind: str, settings: Settings) -> PolicyDocument:
    """The policy `iam-onboard policy KIND` prints ("runtime", "bootstrap" or "mfa")."""
    if kind == "runtime":
        return runtime_policy(settings)
    if kind == "bootstrap":
        return bootstrap_policy(settings)
    if kind == "mfa":
        return mfa_policy()
    raise ValueError(f"no policy called {kind!r}")


def cloudformation_resource(kind: str, settings: Settings) -> dict[str, Any]:
    """The policy as an AWS::IAM::ManagedPolicy resource, for a CloudFormation template."""
    return {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {
            "Description": DESCRIPTIONS[kind],
            "PolicyDocument": policy_for(kind, settings),
        },
    }

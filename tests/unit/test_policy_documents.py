"""The generated policies: the portal's authority bounded in IAM, for the current settings."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from app.aws.ownership import DEVICE_PATH, is_portal_device
from app.aws.policies import policy_actions
from app.aws.policy_documents import (
    bootstrap_policy,
    cloudformation_resource,
    mfa_policy,
    runtime_policy,
)
from app.aws.policy_faults import find_faults
from app.config import Settings, load_settings

MANAGED = {"StringEquals": {"iam:ResourceTag/iam-onboard:managed": "true"}}
USERS = "arn:aws:iam::*:user/*"
ACCOUNT = "123456789012"


def settings(**overrides: Any) -> Settings:
    return load_settings(secret_key="t" * 40, **overrides)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(doc: dict[str, Any], effect: str) -> list[dict[str, Any]]:
    return [s for s in doc["Statement"] if s["Effect"] == effect]


def sid(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in doc["Statement"] if s["Sid"] == name)


def matches(patterns: list[str], value: str) -> bool:
    """IAM's wildcards (case-insensitive for actions); enough for the names used here."""
    return any(fnmatchcase(value.lower(), p.lower()) for p in patterns)


def is_read(action: str) -> bool:
    return action.startswith(("iam:Get", "iam:List"))


# -- runtime --------------------------------------------------------------------------------


def test_every_user_change_needs_the_managed_tag_except_create_and_the_portals_tags() -> None:
    doc = runtime_policy(settings())
    changes = 0
    for s in statements(doc, "Allow"):
        if USERS not in as_list(s["Resource"]):
            continue
        for action in as_list(s["Action"]):
            if is_read(action):
                continue
            changes += 1
            if action == "iam:CreateUser":
                assert s["Condition"] == {
                    "StringEquals": {"aws:RequestTag/iam-onboard:managed": "true"}
                }
            elif action == "iam:TagUser":
                keys = s["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
                assert sorted(keys) == [
                    "iam-onboard:email",
                    "iam-onboard:invitation",
                    "iam-onboard:managed",
                ]
                assert s["Condition"]["Null"] == {"aws:TagKeys": "false"}
            else:
                assert s["Condition"] == MANAGED, action
    # DeleteUser, the login profile, MFA, keys, certificates, SSH keys, service credentials,
    # policies: every write the gateway makes on a user.
    assert changes == 13


def test_protected_users_are_denied_every_change_whatever_else_allows_it() -> None:
    doc = runtime_policy(settings())
    deny = sid(doc, "NeverChangeProtectedUsers")
    assert deny["Effect"] == "Deny" and deny["Resource"] == USERS
    assert deny["Condition"] == {
        "StringEqualsIgnoreCase": {"iam:ResourceTag/iam-onboard:protected": "true"}
    }
    writes = [
        a
        for s in statements(doc, "Allow")
        if USERS in as_list(s["Resource"])
        for a in as_list(s["Action"])
        if not is_read(a)
    ]
    for action in [*writes, "iam:AttachUserPolicy", "iam:UpdateLoginProfile", "iam:PutUserPolicy"]:
        assert not matches(deny["NotAction"], action), f"{action} escapes the deny"
    # Reads stay open: the portal must see the protected tag to leave the user alone.
    assert matches(deny["NotAction"], "iam:ListUserTags")


def test_the_protected_tag_can_be_neither_added_nor_removed() -> None:
    deny = sid(runtime_policy(settings()), "NeverWriteTheProtectedTag")
    assert deny["Effect"] == "Deny"
    assert sorted(deny["Action"]) == ["iam:CreateUser", "iam:TagUser", "iam:UntagUser"]
    assert deny["Condition"] == {
        "ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": ["iam-onboard:protected"]}
    }


def test_group_membership_only_in_the_mfa_and_assignable_groups() -> None:
    doc = runtime_policy(settings(mfa_group="Enforce-MFA", assignable_groups="Dev,ReadOnly"))
    grants = [
        s
        for s in statements(doc, "Allow")
        if {"iam:AddUserToGroup", "iam:RemoveUserFromGroup"} & set(as_list(s["Action"]))
    ]
    assert len(grants) == 1
    resources = grants[0]["Resource"]
    for group in ("Enforce-MFA", "Dev", "ReadOnly"):
        assert matches(resources, f"arn:aws:iam::{ACCOUNT}:group/{group}")
        assert matches(resources, f"arn:aws:iam::{ACCOUNT}:group/teams/{group}")
    for group in ("Admins", "MFA", "Dev2", "ReadOnlyx"):
        assert not matches(resources, f"arn:aws:iam::{ACCOUNT}:group/{group}"), group
    alone = runtime_policy(settings())
    assert sid(alone, "MembershipOfTheMFAAndAssignableGroupsOnly")["Resource"] == [
        "arn:aws:iam::*:group/MFA",
        "arn:aws:iam::*:group/*/MFA",
    ]


def test_devices_are_created_and_deleted_under_the_portals_path_only() -> None:
    doc = runtime_policy(settings())
    device_actions = {"iam:CreateVirtualMFADevice", "iam:DeleteVirtualMFADevice"}
    grants = [s for s in statements(doc, "Allow") if device_actions & set(as_list(s["Action"]))]
    assert len(grants) == 1
    resources = as_list(grants[0]["Resource"])
    ours = f"arn:aws:iam::{ACCOUNT}:mfa{DEVICE_PATH}alice"
    assert matches(resources, ours) and is_portal_device(ours)
    someone_elses = f"arn:aws:iam::{ACCOUNT}:mfa/alice"
    assert not matches(resources, someone_elses) and not is_portal_device(someone_elses)


@pytest.mark.parametrize(
    ("serial", "ours"),
    [
        ("arn:aws:iam::123456789012:mfa/iam-onboard/alice", True),
        ("arn:aws:iam::123456789012:mfa/iam-onboard/bob-3fa2c1", True),
        ("arn:aws-us-gov:iam::123456789012:mfa/iam-onboard/carol", True),
        ("arn:aws:iam::123456789012:mfa/alice", False),
        ("arn:aws:iam::123456789012:mfa/other/iam-onboard/alice", False),
        ("arn:aws:iam::123456789012:mfa/iam-onboard/nested/alice", False),
        ("arn:aws:iam::123456789012:u2f/user/alice/key", False),
        ("GAHT12345678", False),  # a hardware token's serial
    ],
)
def test_which_devices_are_the_portals(serial: str, ours: bool) -> None:
    assert is_portal_device(serial) is ours


# -- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_touches_only_the_mfa_policy_and_group() -> None:
    doc = bootstrap_policy(settings(mfa_group="Enforce-MFA", mfa_policy="Enforce-MFA-Policy"))
    policy = "arn:aws:iam::*:policy/Enforce-MFA-Policy"
    group = "arn:aws:iam::*:group/Enforce-MFA"
    for s in statements(doc, "Allow"):
        if s["Action"] == "sts:GetCallerIdentity":
            assert s["Resource"] == "*"
        else:
            assert s["Resource"] in (policy, group), s["Sid"]
    attach = [s for s in doc["Statement"] if "iam:AttachGroupPolicy" in as_list(s["Action"])]
    assert len(attach) == 1
    assert attach[0]["Resource"] == group
    assert attach[0]["Condition"] == {"ArnLike": {"iam:PolicyARN": policy}}
    writes = {"iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:CreatePolicy"}
    assert all(
        s["Resource"] == policy for s in doc["Statement"] if writes & set(as_list(s["Action"]))
    )


# -- the MFA group's policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        "iam:CreateAccessKey",
        "iam:UpdateAccessKey",
        "iam:CreateVirtualMFADevice",
        "iam:EnableMFADevice",
        "iam:DeleteVirtualMFADevice",
        "s3:GetObject",
    ],
)
def test_mfa_policy_denies_keys_and_enrollment_without_mfa(action: str) -> None:
    deny = sid(mfa_policy(), "BlockMostAccessUnlessSignedInWithMFA")
    assert deny["Condition"] == {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}
    assert deny["Resource"] == "*"
    assert not matches(deny["NotAction"], action)


def test_mfa_policy_leaves_open_only_what_reaches_an_mfa_session() -> None:
    doc = mfa_policy()
    deny = sid(doc, "BlockMostAccessUnlessSignedInWithMFA")
    for action in ("sts:GetSessionToken", "iam:ChangePassword", "iam:ResyncMFADevice"):
        assert matches(deny["NotAction"], action)
    assert find_faults(doc) == []
    # With MFA, a user still manages their own keys and devices, as in AWS's example.
    allowed = policy_actions({"Statement": statements(doc, "Allow")})
    assert {"iam:CreateAccessKey", "iam:CreateVirtualMFADevice", "iam:EnableMFADevice"} <= allowed
    portal_path = sid(doc, "DenyDevicesUnderThePortalsPath")
    assert portal_path["Resource"] == f"arn:aws:iam::*:mfa{DEVICE_PATH}*"


# -- CloudFormation -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["runtime", "bootstrap", "mfa"])
def test_cloudformation_fragment_wraps_the_same_document(kind: str) -> None:
    s = settings(assignable_groups="Dev")
    fragment = cloudformation_resource(kind, s)
    assert fragment["Type"] == "AWS::IAM::ManagedPolicy"
    assert set(fragment["Properties"]) == {"Description", "PolicyDocument"}
    assert fragment["Properties"]["Description"]
    expected = {"runtime": runtime_policy(s), "bootstrap": bootstrap_policy(s), "mfa": mfa_policy()}
    assert fragment["Properties"]["PolicyDocument"] == expected[kind]

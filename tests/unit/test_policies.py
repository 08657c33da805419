"""The MFA policy, its fault finder and drift report, and the portal's own IAM policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from app.aws.policies import (
    POLICY_SIZE_LIMIT,
    documents_equal,
    mfa_policy_document,
    policy_actions,
    policy_drift,
    render_policy,
)
from app.aws.policy_documents import bootstrap_policy, runtime_policy
from app.aws.policy_faults import find_faults
from app.config import load_settings

# The seed as published (shared/reference/seed-mfa-policy.json), kept here so the test does not
# depend on a folder outside the repository.
SEED_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowManageOwnPasswords",
            "Effect": "Allow",
            "Action": ["iam:GetAccountPasswordPolicy", "iam:ChangePassword", "iam:GetUser"],
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        },
        {
            "Sid": "ViewAndUpdateAccessKeys",
            "Effect": "Allow",
            "Action": ["iam:UpdateAccessKey", "iam:CreateAccessKey", "iam:ListAccessKeys"],
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        },
        {
            "Sid": "AllowListActions",
            "Effect": "Allow",
            "Action": ["iam:ListUsers", "iam:ListVirtualMFADevices"],
            "Resource": "*",
        },
        {
            "Sid": "AllowIndividualUserToListOnlyTheirOwnMFA",
            "Effect": "Allow",
            "Action": ["iam:ListMFADevices"],
            "Resource": ["arn:aws:iam::*:mfa/*", "arn:aws:iam::*:user/${aws:username}"],
        },
        {
            "Sid": "AllowIndividualUserToManageTheirOwnMFA",
            "Effect": "Allow",
            "Action": [
                "iam:CreateVirtualMFADevice",
                "iam:DeleteVirtualMFADevice",
                "iam:EnableMFADevice",
                "iam:ResyncMFADevice",
            ],
            "Resource": ["arn:aws:iam::*:mfa/*", "arn:aws:iam::*:user/${aws:username}"],
        },
        {
            "Sid": "AllowIndividualUserToDeactivateOnlyTheirOwnMFAOnlyWhenUsingMFA",
            "Effect": "Allow",
            "Action": ["iam:DeactivateMFADevice"],
            "Resource": ["arn:aws:iam::*:mfa/*", "arn:aws:iam::*:user/${aws:username}"],
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        },
        {
            "Sid": "BlockMostAccessUnlessSignedInWithMFA",
            "Effect": "Deny",
            "NotAction": [
                "iam:CreateVirtualMFADevice",
                "iam:DeleteVirtualMFADevice",
                "iam:EnableMFADevice",
                "iam:ListMFADevices",
                "iam:ListUsers",
                "iam:ListVirtualMFADevices",
                "iam:ResyncMFADevice",
                "iam:GetUser",
                "iam:ChangePassword",
                "iam:UpdateAccessKey",
                "iam:CreateAccessKey",
                "iam:ListAccessKeys",
            ],
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    ],
}

SHARED_SEED = Path(__file__).resolve().parents[3] / "shared" / "reference" / "seed-mfa-policy.json"

# Every IAM/STS action the IAM gateway (app/aws/iam.py) calls while serving.
RUNTIME_ACTIONS = {
    "sts:GetCallerIdentity",
    *(
        f"iam:{name}"
        for name in (
            "GetUser ListUsers CreateUser DeleteUser TagUser ListUserTags GetGroup AddUserToGroup "
            "RemoveUserFromGroup ListGroupsForUser ListAttachedGroupPolicies ListPolicyVersions "
            "GetPolicy GetPolicyVersion ListAttachedUserPolicies DetachUserPolicy "
            "ListUserPolicies DeleteUserPolicy CreateVirtualMFADevice DeleteVirtualMFADevice "
            "ListVirtualMFADevices EnableMFADevice DeactivateMFADevice ListMFADevices "
            "CreateLoginProfile GetLoginProfile DeleteLoginProfile ListAccessKeys "
            "GetAccessKeyLastUsed DeleteAccessKey ListSigningCertificates "
            "DeleteSigningCertificate ListSSHPublicKeys DeleteSSHPublicKey "
            "ListServiceSpecificCredentials DeleteServiceSpecificCredential ListAccountAliases "
            "GetAccountPasswordPolicy GenerateCredentialReport GetCredentialReport "
            "ListEntitiesForPolicy"
        ).split()
    ),
}

BOOTSTRAP_ACTIONS = {
    "sts:GetCallerIdentity",
    "iam:CreatePolicy",
    "iam:GetPolicy",
    "iam:CreatePolicyVersion",
    "iam:GetPolicyVersion",
    "iam:ListPolicyVersions",
    "iam:DeletePolicyVersion",
    "iam:CreateGroup",
    "iam:GetGroup",
    "iam:AttachGroupPolicy",
    "iam:ListAttachedGroupPolicies",
}


def codes(doc: Any) -> list[str]:
    return [fault.code for fault in find_faults(doc)]


def statement(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in doc["Statement"] if s.get("Sid") == sid)


DENY = "BlockMostAccessUnlessSignedInWithMFA"


# -- the portal's MFA policy ----------------------------------------------------------------


def test_seed_copy_matches_the_shared_reference() -> None:
    if not SHARED_SEED.exists():
        pytest.skip("shared/ folder not beside the repository")
    assert json.loads(SHARED_SEED.read_text()) == SEED_POLICY


def test_seed_policy_has_its_known_faults_and_no_others() -> None:
    assert codes(SEED_POLICY) == [
        "password-policy-resource",
        "password-policy-blocked",
        "list-users-exposed",
        "access-keys-without-mfa",
        "self-enrollment-without-mfa",
    ]
    for fault in find_faults(SEED_POLICY):
        assert fault.problem and fault.fix


def test_portal_policy_has_no_fault() -> None:
    assert find_faults(mfa_policy_document()) == []


def test_portal_policy_keeps_the_seed_intent_with_its_faults_fixed() -> None:
    doc = mfa_policy_document()
    deny = statement(doc, DENY)
    assert deny["Effect"] == "Deny" and deny["Resource"] == "*"
    assert deny["Condition"] == {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}
    # Without MFA: only what it takes to reach an MFA session (docs/mfa-policy.md).
    assert sorted(deny["NotAction"]) == [
        "iam:ChangePassword",
        "iam:GetAccountPasswordPolicy",
        "iam:GetUser",
        "iam:ResyncMFADevice",
        "sts:GetSessionToken",
    ]
    password_policy = [
        s
        for s in doc["Statement"]
        if "iam:GetAccountPasswordPolicy" in policy_actions({"Statement": s})
    ]
    assert password_policy == [statement(doc, "AllowViewAccountPasswordPolicy")]
    assert password_policy[0]["Resource"] == "*"
    assert statement(doc, "AllowCreateVirtualMFADevice")["Resource"] == "arn:aws:iam::*:mfa/*"
    assert statement(doc, "AllowManageOwnMFA")["Resource"] == "arn:aws:iam::*:user/${aws:username}"
    assert "iam:ListUsers" not in render_policy(doc)
    assert "mfa/${aws:username}" not in render_policy(doc)


def test_render_is_compact_stable_and_within_the_iam_limit() -> None:
    doc = mfa_policy_document()
    text = render_policy(doc)
    assert json.loads(text) == doc
    assert text == render_policy(mfa_policy_document())
    assert len(text) < POLICY_SIZE_LIMIT
    assert "\n" not in text and ": " not in text and ", " not in text


def test_render_refuses_a_document_iam_would_reject() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": f"s3:GetObject{i}", "Resource": "*"} for i in range(200)
        ],
    }
    with pytest.raises(ValueError, match="6144"):
        render_policy(doc)


def test_mfa_policy_document_is_a_fresh_copy() -> None:
    doc = mfa_policy_document()
    doc["Statement"].clear()
    assert mfa_policy_document()["Statement"]


# -- each fault on its own ------------------------------------------------------------------


def test_password_policy_on_a_user_resource() -> None:
    doc = mfa_policy_document()
    doc["Statement"].remove(statement(doc, "AllowViewAccountPasswordPolicy"))
    statement(doc, "AllowManageOwnPassword")["Action"].append("iam:GetAccountPasswordPolicy")
    assert codes(doc) == ["password-policy-resource"]


def test_password_policy_denied_before_mfa() -> None:
    doc = mfa_policy_document()
    statement(doc, DENY)["NotAction"].remove("iam:GetAccountPasswordPolicy")
    assert codes(doc) == ["password-policy-blocked"]


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:iam::*:mfa/${aws:username}",
        ["arn:aws:iam::*:mfa/${aws:username}", "arn:aws:iam::*:user/${aws:username}"],
    ],
)
def test_mfa_device_resource_named_after_the_user(resource: Any) -> None:
    doc = mfa_policy_document()
    statement(doc, "AllowCreateVirtualMFADevice")["Resource"] = resource
    assert codes(doc) == ["mfa-resource-by-username"]


@pytest.mark.parametrize("action", ["iam:ListUsers", ["iam:ListVirtualMFADevices", "iam:List*"]])
def test_list_users_allowed(action: Any) -> None:
    doc = mfa_policy_document()
    statement(doc, "AllowListVirtualMFADevices")["Action"] = action
    assert codes(doc) == ["list-users-exposed"]


def test_list_users_exempt_from_the_deny_only() -> None:
    doc = mfa_policy_document()
    statement(doc, DENY)["NotAction"].append("iam:listusers")
    faults = find_faults(doc)
    assert [f.code for f in faults] == ["list-users-exposed"]
    assert "exempt" in faults[0].problem


def test_deny_with_bool_misses_long_term_access_keys() -> None:
    doc = mfa_policy_document()
    statement(doc, DENY)["Condition"] = {"Bool": {"aws:MultiFactorAuthPresent": "false"}}
    # A leaked key then reaches what the group allows after MFA: keys and devices too.
    assert codes(doc) == [
        "deny-uses-bool",
        "access-keys-without-mfa",
        "self-enrollment-without-mfa",
    ]


def test_no_deny_without_mfa() -> None:
    doc = mfa_policy_document()
    doc["Statement"].remove(statement(doc, DENY))
    assert codes(doc) == [
        "no-deny-without-mfa",
        "access-keys-without-mfa",
        "self-enrollment-without-mfa",
    ]


def test_a_deny_on_something_else_does_not_count() -> None:
    doc = mfa_policy_document()
    statement(doc, DENY)["Condition"] = {"BoolIfExists": {"aws:SecureTransport": "false"}}
    assert codes(doc)[0] == "no-deny-without-mfa"


def test_change_password_denied_before_mfa() -> None:
    doc = mfa_policy_document()
    statement(doc, DENY)["NotAction"].remove("iam:ChangePassword")
    assert codes(doc) == ["change-password-blocked"]


def test_deny_on_every_action_blocks_the_password_actions() -> None:
    doc = mfa_policy_document()
    deny = statement(doc, DENY)
    del deny["NotAction"]
    deny["Action"] = "*"
    assert codes(doc) == ["password-policy-blocked", "change-password-blocked"]


def test_hand_written_forms_single_statement_and_strings() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"},
    }
    assert codes(doc) == ["list-users-exposed", "no-deny-without-mfa"]


def test_hand_written_forms_wildcards_booleans_and_key_case() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iam:*Password*", "Resource": "*"},
            {
                "Effect": "Deny",
                "NotAction": ["IAM:Change*", "iam:GetAccountPasswordPolicy"],
                "Resource": "*",
                "Condition": {"BoolIfExists": {"aws:multifactorauthpresent": False}},
            },
        ],
    }
    assert codes(doc) == []


def test_faults_found_in_json_text_and_url_encoded_text() -> None:
    text = json.dumps(SEED_POLICY)
    assert codes(text) == codes(SEED_POLICY)
    assert codes(quote(text)) == codes(SEED_POLICY)


# -- drift ----------------------------------------------------------------------------------


def test_no_drift_against_itself() -> None:
    assert policy_drift(mfa_policy_document(), mfa_policy_document()) == []
    assert documents_equal(mfa_policy_document(), mfa_policy_document())


def test_order_case_and_single_item_forms_are_not_drift() -> None:
    live = mfa_policy_document()
    live["Statement"].reverse()
    for s in live["Statement"]:
        for key in ("Action", "NotAction"):
            if isinstance(s.get(key), list):
                s[key] = [a.upper() for a in reversed(s[key])]
            elif isinstance(s.get(key), str):
                s[key] = [s[key]]
        if isinstance(s["Resource"], str):
            s["Resource"] = [s["Resource"]]
    statement(live, DENY)["Condition"] = {"BoolIfExists": {"aws:MultiFactorAuthPresent": False}}
    assert policy_drift(live, mfa_policy_document()) == []
    assert documents_equal(live, mfa_policy_document())
    assert policy_drift(render_policy(live), quote(render_policy(mfa_policy_document()))) == []


def test_drift_names_the_missing_action() -> None:
    live = mfa_policy_document()
    statement(live, DENY)["NotAction"].remove("iam:ChangePassword")
    assert policy_drift(live, mfa_policy_document()) == [
        f"statement {DENY}: NotAction lacks iam:ChangePassword"
    ]
    assert not documents_equal(live, mfa_policy_document())


def test_drift_names_an_extra_resource_and_a_changed_condition() -> None:
    live = mfa_policy_document()
    statement(live, "AllowManageOwnMFA")["Resource"] = [
        "arn:aws:iam::*:user/${aws:username}",
        "arn:aws:iam::*:mfa/*",
    ]
    statement(live, DENY)["Condition"] = {"Bool": {"aws:MultiFactorAuthPresent": "false"}}
    drift = policy_drift(live, mfa_policy_document())
    assert "statement AllowManageOwnMFA: Resource also has arn:aws:iam::*:mfa/*" in drift
    assert any(line.startswith(f"statement {DENY}: Condition is") for line in drift)
    assert any("BoolIfExists" in line for line in drift)
    assert len(drift) == 2


def test_drift_names_missing_and_extra_statements() -> None:
    live = mfa_policy_document()
    live["Statement"].remove(statement(live, "AllowListVirtualMFADevices"))
    live["Statement"].append({"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"})
    assert policy_drift(live, mfa_policy_document()) == [
        "statement AllowListVirtualMFADevices is missing",
        "unnamed Allow statement for iam:ListUsers is not in the portal's version",
    ]


def test_drift_in_version() -> None:
    live = mfa_policy_document()
    live["Version"] = "2008-10-17"
    assert policy_drift(live, mfa_policy_document()) == [
        'Version is "2008-10-17" (should be "2012-10-17")'
    ]


def test_seed_drifts_from_the_portal_policy() -> None:
    drift = policy_drift(SEED_POLICY, mfa_policy_document())
    assert "statement AllowListActions is not in the portal's version" in drift
    assert not documents_equal(SEED_POLICY, mfa_policy_document())


# -- the portal's own policies --------------------------------------------------------------


SETTINGS = load_settings(
    secret_key="t" * 40, mfa_group="MFA", mfa_policy="MFA", assignable_groups=["Developers"]
)


def allowed_actions(doc: dict[str, Any]) -> set[str]:
    return policy_actions({"Statement": [s for s in doc["Statement"] if s["Effect"] == "Allow"]})


def assert_valid_policy(doc: dict[str, Any]) -> None:
    assert doc["Version"] == "2012-10-17"
    assert isinstance(doc["Statement"], list) and doc["Statement"]
    sids = [s["Sid"] for s in doc["Statement"]]
    assert len(sids) == len(set(sids))
    for s in doc["Statement"]:
        assert s["Effect"] in ("Allow", "Deny")
        assert (s.get("Action") or s.get("NotAction")) and s["Resource"]
        if s["Effect"] == "Allow":  # no wildcard grants: each action is named
            assert "NotAction" not in s
            assert all(":" in a and "*" not in a for a in policy_actions({"Statement": s}))
    assert len(render_policy(doc)) < POLICY_SIZE_LIMIT


def test_runtime_policy_grants_exactly_what_the_gateway_calls() -> None:
    doc = runtime_policy(SETTINGS)
    assert_valid_policy(doc)
    assert allowed_actions(doc) == RUNTIME_ACTIONS


def test_runtime_policy_scopes_each_action_to_its_resource_type() -> None:
    doc = runtime_policy(SETTINGS)
    resources = {
        action: s["Resource"]
        for s in doc["Statement"]
        if s["Effect"] == "Allow"
        for action in policy_actions({"Statement": s})
    }
    assert resources["iam:DeleteUser"] == "arn:aws:iam::*:user/*"
    assert resources["iam:AddUserToGroup"] == [
        "arn:aws:iam::*:group/MFA",
        "arn:aws:iam::*:group/*/MFA",
        "arn:aws:iam::*:group/Developers",
        "arn:aws:iam::*:group/*/Developers",
    ]
    assert resources["iam:CreateVirtualMFADevice"] == "arn:aws:iam::*:mfa/iam-onboard/*"
    assert resources["iam:GetPolicyVersion"] == "arn:aws:iam::*:policy/*"
    assert resources["iam:GetCredentialReport"] == "*"


def test_bootstrap_policy_grants_exactly_what_bootstrap_needs() -> None:
    doc = bootstrap_policy(SETTINGS)
    assert_valid_policy(doc)
    assert allowed_actions(doc) == BOOTSTRAP_ACTIONS

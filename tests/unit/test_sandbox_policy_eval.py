"""The sandbox's IAM policy evaluator, on policies copied from AWS's IAM user guide.

Each test names the guide page its policy comes from (docs.aws.amazon.com/IAM/latest/UserGuide/).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from app.sandbox.policy_eval import Request, arn_match, evaluate, wildcard_match

ACCOUNT = "111122223333"


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def ctx(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The context of a request by IAM user alice; `extra` keys in lower case."""
    return {"aws:username": "alice", **(extra or {})}


# reference_policies_examples_aws_my-sec-creds-self-manage-mfa-only.html (the deny statement
# and the MFA self-service statements of "Allows MFA-authenticated IAM users to manage their
# own MFA device").
MFA_SELF_MANAGE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowListActions",
            "Effect": "Allow",
            "Action": ["iam:ListUsers", "iam:ListVirtualMFADevices"],
            "Resource": "*",
        },
        {
            "Sid": "AllowUserToCreateVirtualMFADevice",
            "Effect": "Allow",
            "Action": ["iam:CreateVirtualMFADevice"],
            "Resource": "arn:aws:iam::*:mfa/*",
        },
        {
            "Sid": "AllowUserToManageTheirOwnMFA",
            "Effect": "Allow",
            "Action": [
                "iam:EnableMFADevice",
                "iam:GetMFADevice",
                "iam:ListMFADevices",
                "iam:ResyncMFADevice",
            ],
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        },
        {
            "Sid": "AllowUserToDeactivateTheirOwnMFAOnlyWhenUsingMFA",
            "Effect": "Allow",
            "Action": ["iam:DeactivateMFADevice"],
            "Resource": ["arn:aws:iam::*:user/${aws:username}"],
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        },
        {
            "Sid": "BlockMostAccessUnlessSignedInWithMFA",
            "Effect": "Deny",
            "NotAction": [
                "iam:CreateVirtualMFADevice",
                "iam:EnableMFADevice",
                "iam:ListMFADevices",
                "iam:ListUsers",
                "iam:ListVirtualMFADevices",
                "iam:ResyncMFADevice",
            ],
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    ],
}


def test_mfa_example_long_term_key_reaches_only_the_mfa_actions() -> None:
    # Long-term keys carry no aws:MultiFactorAuthPresent: BoolIfExists ... false matches.
    enable = Request("iam:EnableMFADevice", user_arn("alice"), ctx())
    assert evaluate([MFA_SELF_MANAGE], enable).allowed
    create = Request("iam:CreateVirtualMFADevice", f"arn:aws:iam::{ACCOUNT}:mfa/alice", ctx())
    assert evaluate([MFA_SELF_MANAGE], create).allowed
    deactivate = Request("iam:DeactivateMFADevice", user_arn("alice"), ctx())
    decision = evaluate([MFA_SELF_MANAGE], deactivate)
    assert not decision.allowed and decision.explicit_deny


def test_mfa_example_session_without_mfa_is_denied_and_with_mfa_allowed() -> None:
    request = Request("iam:DeactivateMFADevice", user_arn("alice"), ctx())
    without = Request(
        request.action, request.resource, ctx({"aws:multifactorauthpresent": "false"})
    )
    assert evaluate([MFA_SELF_MANAGE], without).explicit_deny
    with_mfa = Request(
        request.action, request.resource, ctx({"aws:multifactorauthpresent": "true"})
    )
    assert evaluate([MFA_SELF_MANAGE], with_mfa).allowed


def test_mfa_example_username_variable_scopes_to_the_caller() -> None:
    mfa = {"aws:multifactorauthpresent": "true"}
    other = Request("iam:EnableMFADevice", user_arn("bob"), ctx(mfa))
    decision = evaluate([MFA_SELF_MANAGE], other)
    assert not decision.allowed and not decision.explicit_deny  # implicit deny


def test_a_bool_condition_on_an_absent_key_is_false_and_ifexists_true() -> None:
    # reference_policies_elements_condition_operators.html#Conditions_IfExists: the pitfall of
    # "Bool ... false" for long-term keys (no key -> condition false -> the deny never applies).
    deny_bool = {
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}},
            },
        ]
    }
    request = Request("iam:ListUsers", "*", ctx())
    assert evaluate([deny_bool], request).allowed


# reference_policies_examples_iam-add-tag.html
ADD_TAG = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ListTagsForAllUsers",
            "Effect": "Allow",
            "Action": ["iam:ListUserTags", "iam:ListUsers"],
            "Resource": "*",
        },
        {
            "Sid": "TagManagerWithSpecificDepartment",
            "Effect": "Allow",
            "Action": "iam:TagUser",
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "iam:ResourceTag/JobFunction": "Manager",
                    "aws:RequestTag/Department": ["Marketing", "Development", "QualityAssurance"],
                },
                "ForAllValues:StringEquals": {"aws:TagKeys": "Department"},
            },
        },
    ],
}


def tag_request(resource_tags: dict[str, str], request_tags: dict[str, str]) -> Request:
    context: dict[str, Any] = {"aws:username": "alice"}
    for key, value in resource_tags.items():
        context[f"iam:resourcetag/{key.lower()}"] = value
        context[f"aws:resourcetag/{key.lower()}"] = value
    for key, value in request_tags.items():
        context[f"aws:requesttag/{key.lower()}"] = value
    context["aws:tagkeys"] = list(request_tags)
    return Request("iam:TagUser", user_arn("bob"), context)


def test_add_tag_example() -> None:
    manager = {"JobFunction": "Manager"}
    assert evaluate([ADD_TAG], tag_request(manager, {"Department": "Marketing"})).allowed
    # Another value, a user who is not a manager, or an extra tag key: denied.
    assert not evaluate([ADD_TAG], tag_request(manager, {"Department": "Sales"})).allowed
    assert not evaluate([ADD_TAG], tag_request({}, {"Department": "Marketing"})).allowed
    extra = {"Department": "Marketing", "CostCenter": "1"}
    assert not evaluate([ADD_TAG], tag_request(manager, extra)).allowed


# reference_policies_examples_iam-manage-tags.html: ForAllValues with no tag keys is true.
def test_manage_tags_example_forallvalues_on_absent_key_is_true() -> None:
    policy = {
        "Statement": {
            "Effect": "Allow",
            "Action": ["iam:TagUser", "iam:TagRole", "iam:UntagUser", "iam:UntagRole"],
            "Resource": "*",
            "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": "Department"}},
        }
    }
    untag = Request("iam:UntagUser", user_arn("bob"), {"aws:tagkeys": ["Department"]})
    assert evaluate([policy], untag).allowed
    wrong = Request("iam:UntagUser", user_arn("bob"), {"aws:tagkeys": ["Team"]})
    assert not evaluate([policy], wrong).allowed
    assert evaluate([policy], Request("iam:UntagUser", user_arn("bob"), {})).allowed


def test_forany_value_needs_one_match_and_is_false_when_absent() -> None:
    # reference_policies_condition-single-vs-multi-valued-context-keys.html
    policy = {
        "Statement": {
            "Effect": "Allow",
            "Action": "iam:TagUser",
            "Resource": "*",
            "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": "team-*"}},
        }
    }
    assert evaluate([policy], Request("iam:TagUser", "*", {"aws:tagkeys": ["x", "team-a"]})).allowed
    assert not evaluate([policy], Request("iam:TagUser", "*", {})).allowed


# reference_policies_examples_iam_manage-group-membership.html
GROUP_MEMBERSHIP = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ViewGroups",
            "Effect": "Allow",
            "Action": ["iam:ListGroups", "iam:ListUsers", "iam:GetUser", "iam:ListGroupsForUser"],
            "Resource": "*",
        },
        {
            "Sid": "ViewEditThisGroup",
            "Effect": "Allow",
            "Action": ["iam:AddUserToGroup", "iam:RemoveUserFromGroup", "iam:GetGroup"],
            "Resource": "arn:aws:iam::*:group/MarketingGroup",
        },
    ],
}


def test_group_membership_example_scopes_by_group_arn() -> None:
    marketing = f"arn:aws:iam::{ACCOUNT}:group/MarketingGroup"
    admins = f"arn:aws:iam::{ACCOUNT}:group/Admins"
    assert evaluate([GROUP_MEMBERSHIP], Request("iam:AddUserToGroup", marketing, ctx())).allowed
    assert not evaluate([GROUP_MEMBERSHIP], Request("iam:AddUserToGroup", admins, ctx())).allowed
    # A statement on "*" matches a group ARN too; one on an ARN never matches "*".
    assert evaluate([GROUP_MEMBERSHIP], Request("iam:ListUsers", "*", ctx())).allowed
    assert not evaluate([GROUP_MEMBERSHIP], Request("iam:GetGroup", "*", ctx())).allowed


# reference_policies_examples_iam_limits-managed-policies.html
LIMIT_MANAGED_POLICIES = {
    "Version": "2012-10-17",
    "Statement": {
        "Effect": "Allow",
        "Action": [
            "iam:AttachUserPolicy",
            "iam:DetachUserPolicy",
            "iam:AttachGroupPolicy",
            "iam:DetachGroupPolicy",
        ],
        "Resource": "*",
        "Condition": {
            "ArnEquals": {
                "iam:PolicyARN": [
                    "arn:aws:iam::*:policy/policy-name-1",
                    "arn:aws:iam::*:policy/policy-name-2",
                ]
            }
        },
    },
}


def test_limit_managed_policies_example_checks_the_policy_arn() -> None:
    def attach(policy: str) -> Request:
        arn = f"arn:aws:iam::{ACCOUNT}:policy/{policy}"
        return Request("iam:AttachUserPolicy", user_arn("bob"), {"iam:policyarn": arn})

    assert evaluate([LIMIT_MANAGED_POLICIES], attach("policy-name-2")).allowed
    assert not evaluate([LIMIT_MANAGED_POLICIES], attach("AdministratorAccess")).allowed
    no_key = Request("iam:AttachUserPolicy", user_arn("bob"), {})
    assert not evaluate([LIMIT_MANAGED_POLICIES], no_key).allowed


# reference_policies_evaluation-logic.html: an explicit deny overrides any allow, in any policy.
def test_explicit_deny_in_one_policy_overrides_an_allow_in_another() -> None:
    admin = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    deny = {"Statement": [{"Effect": "Deny", "Action": "iam:Delete*", "Resource": "*"}]}
    decision = evaluate([admin, deny], Request("iam:DeleteUser", user_arn("bob"), ctx()))
    assert not decision.allowed and decision.explicit_deny
    assert evaluate([admin, deny], Request("iam:CreateUser", user_arn("bob"), ctx())).allowed
    assert not evaluate([], Request("iam:CreateUser", user_arn("bob"), ctx())).allowed


def test_not_resource_and_negated_operator_on_absent_key() -> None:
    # reference_policies_elements_notresource.html; condition operators page (negated + absent).
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "iam:*", "NotResource": "arn:aws:iam::*:user/root-*"},
            {
                "Effect": "Deny",
                "Action": "iam:DeleteLoginProfile",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"iam:ResourceTag/managed": "true"}},
            },
        ]
    }
    assert not evaluate([policy], Request("iam:GetUser", user_arn("root-x"), ctx())).allowed
    delete = Request("iam:DeleteLoginProfile", user_arn("bob"), ctx())
    assert evaluate([policy], delete).explicit_deny  # tag absent: StringNotEquals is true
    tagged = Request(delete.action, delete.resource, {"iam:resourcetag/managed": "true"})
    assert evaluate([policy], tagged).allowed


def test_null_and_stringequals_ifexists() -> None:
    # reference_policies_elements_condition_operators.html#Conditions_Null
    policy = {
        "Statement": {
            "Effect": "Allow",
            "Action": "iam:CreateUser",
            "Resource": "*",
            "Condition": {
                "Null": {"aws:RequestTag/team": "false"},
                "StringEqualsIfExists": {"aws:RequestTag/owner": "${aws:username}"},
            },
        }
    }
    request = Request("iam:CreateUser", user_arn("bob"), ctx({"aws:requesttag/team": "x"}))
    assert evaluate([policy], request).allowed
    assert not evaluate([policy], Request("iam:CreateUser", user_arn("bob"), ctx())).allowed
    owner_other = ctx({"aws:requesttag/team": "x", "aws:requesttag/owner": "eve"})
    assert not evaluate([policy], Request("iam:CreateUser", user_arn("bob"), owner_other)).allowed


@pytest.mark.parametrize(
    "condition",
    [
        {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}},  # operator not implemented
        {"Bool": {"aws:MultiFactorAuthPresnt": "true"}},  # a misspelt key
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
    ],
)
def test_unknown_operator_or_key_denies_and_says_which(
    condition: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    allow_all = {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
    # Even in a Deny statement that would not apply, the unknown part denies.
    odd = {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition}}
    with caplog.at_level(logging.WARNING, logger="iam_onboard.sandbox.policy"):
        decision = evaluate([allow_all, odd], Request("iam:ListUsers", "*", ctx()))
    assert not decision.allowed
    operator, keys = next(iter(condition.items()))
    assert operator in caplog.text or next(iter(keys)) in caplog.text


def test_wildcards_and_arn_parts() -> None:
    assert wildcard_match("iam:List*", "iam:ListUsers")
    assert wildcard_match("user/?ob", "user/bob") and not wildcard_match("user/?ob", "user/bbob")
    assert arn_match("arn:aws:iam::*:user/*", user_arn("bob"))
    assert not arn_match("arn:aws:iam::*:user/*", f"arn:aws:iam::{ACCOUNT}:group/g")
    # A wildcard stays within its ARN part: "*" in the account cannot eat the resource type.
    assert not arn_match("arn:aws:iam::*", user_arn("bob"))

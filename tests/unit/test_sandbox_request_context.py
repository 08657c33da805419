"""What the enforcing sandbox authorizes for each IAM call: action, resource ARN, condition keys.

Resources per the Service Authorization Reference ("Actions, resources, and condition keys for
AWS Identity and Access Management", service-authorization/latest/reference/
list_awsidentityandaccessmanagementiam.html). On a private moto backend: no server, no HTTP.
"""

from __future__ import annotations

import pytest
from moto.iam.models import IAMBackend

from app.sandbox.request_context import Caller, iam_requests

ACCOUNT = "111122223333"
ALICE = Caller("alice", f"arn:aws:iam::{ACCOUNT}:user/alice", "AIDAALICE")


@pytest.fixture
def backend() -> IAMBackend:
    iam = IAMBackend("us-east-1", ACCOUNT)
    iam.create_user(
        "us-east-1", "bob", "/staff/", [{"Key": "iam-onboard:managed", "Value": "true"}]
    )
    iam.create_group("Developers", "/teams/")
    return iam


def one(backend: IAMBackend, action: str, caller: Caller = ALICE, **params: str):  # type: ignore[no-untyped-def]
    (request,) = iam_requests(action, params, caller, backend, ACCOUNT)
    return request


def test_user_actions_act_on_the_user_arn_with_its_path_and_tags(backend: IAMBackend) -> None:
    request = one(backend, "DeleteLoginProfile", UserName="bob")
    assert request.action == "iam:DeleteLoginProfile"
    assert request.resource == f"arn:aws:iam::{ACCOUNT}:user/staff/bob"
    assert request.context["iam:resourcetag/iam-onboard:managed"] == "true"
    assert request.context["aws:resourcetag/iam-onboard:managed"] == "true"
    assert request.context["aws:username"] == "alice"
    listed = one(backend, "ListGroupsForUser", UserName="bob")
    assert listed.resource.endswith(":user/staff/bob")


def test_optional_user_name_means_the_caller(backend: IAMBackend) -> None:
    assert one(backend, "CreateAccessKey").resource == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert one(backend, "ChangePassword").resource.endswith(":user/alice")


def test_group_membership_acts_on_the_group_not_the_user(backend: IAMBackend) -> None:
    request = one(backend, "AddUserToGroup", GroupName="Developers", UserName="bob")
    assert request.resource == f"arn:aws:iam::{ACCOUNT}:group/teams/Developers"
    assert "iam:resourcetag/iam-onboard:managed" not in request.context
    assert one(backend, "GetGroup", GroupName="Developers").resource.endswith(
        ":group/teams/Developers"
    )


def test_devices_policies_and_account_wide_actions(backend: IAMBackend) -> None:
    create = one(
        backend, "CreateVirtualMFADevice", VirtualMFADeviceName="bob", Path="/iam-onboard/"
    )
    assert create.resource == f"arn:aws:iam::{ACCOUNT}:mfa/iam-onboard/bob"
    serial = f"arn:aws:iam::{ACCOUNT}:mfa/bob"
    assert one(backend, "DeleteVirtualMFADevice", SerialNumber=serial).resource == serial
    # EnableMFADevice is authorized on the user, not the device.
    enable = one(backend, "EnableMFADevice", UserName="bob", SerialNumber=serial)
    assert enable.resource.endswith(":user/staff/bob")
    policy = f"arn:aws:iam::{ACCOUNT}:policy/MFA"
    assert one(backend, "GetPolicy", PolicyArn=policy).resource == policy
    assert one(backend, "CreatePolicy", PolicyName="MFA").resource == policy
    for action in ("ListUsers", "ListVirtualMFADevices", "GetAccountPasswordPolicy",
                   "GetCredentialReport", "ListAccountAliases"):  # fmt: skip
        assert one(backend, action).resource == "*"


def test_attach_policy_carries_the_policy_arn(backend: IAMBackend) -> None:
    arn = "arn:aws:iam::aws:policy/AdministratorAccess"
    request = one(backend, "AttachUserPolicy", UserName="bob", PolicyArn=arn)
    assert request.resource.endswith(":user/staff/bob")
    assert request.context["iam:policyarn"] == arn


def test_tags_in_the_request_and_create_user_needs_tag_user(backend: IAMBackend) -> None:
    params = {
        "UserName": "carol",
        "Path": "/",
        "Tags.member.1.Key": "iam-onboard:managed",
        "Tags.member.1.Value": "true",
        "Tags.member.2.Key": "team",
        "Tags.member.2.Value": "x",
    }
    create, tag = iam_requests("CreateUser", params, ALICE, backend, ACCOUNT)
    assert (create.action, tag.action) == ("iam:CreateUser", "iam:TagUser")
    assert create.resource == tag.resource == f"arn:aws:iam::{ACCOUNT}:user/carol"
    assert create.context["aws:requesttag/iam-onboard:managed"] == "true"
    assert create.context["aws:tagkeys"] == ["iam-onboard:managed", "team"]
    untag = one(backend, "UntagUser", UserName="bob", **{"TagKeys.member.1": "team"})
    assert untag.context["aws:tagkeys"] == ["team"]


def test_mfa_keys_only_for_session_credentials(backend: IAMBackend) -> None:
    assert "aws:multifactorauthpresent" not in one(backend, "ListUsers").context
    session = Caller("alice", ALICE.user_arn, ALICE.user_id, mfa_present=True, mfa_age_seconds=5)
    context = one(backend, "ListUsers", caller=session).context
    assert context["aws:multifactorauthpresent"] == "true"
    assert context["aws:multifactorauthage"] == "5"
    plain = Caller("alice", ALICE.user_arn, ALICE.user_id, mfa_present=False)
    assert one(backend, "ListUsers", caller=plain).context["aws:multifactorauthpresent"] == "false"

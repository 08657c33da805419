"""The sandbox in enforcement mode: IAM policies executed as AWS evaluates them, over real HTTP.

The policies are written here, copied from AWS's IAM user guide
(docs.aws.amazon.com/IAM/latest/UserGuide/), each citing its page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyotp
import pytest
from botocore.exceptions import ClientError

from app.aws.policy_documents import runtime_policy
from app.config import load_settings
from app.sandbox import SANDBOX_ACCOUNT_ID, SANDBOX_CREDENTIALS, Sandbox, start_sandbox
from app.sandbox.enforcement import ADMIN_ACCESS_KEY_ID, ADMIN_SECRET_ACCESS_KEY, ENFORCE_ENV
from tests.helpers import start_demo

Client = Any
ADMIN = {"aws_access_key_id": ADMIN_ACCESS_KEY_ID, "aws_secret_access_key": ADMIN_SECRET_ACCESS_KEY}

# reference_policies_examples_aws_my-sec-creds-self-manage-mfa-only.html ("IAM: Allows
# MFA-authenticated IAM users to manage their own MFA device"), the deny statement as printed.
MFA_ONLY = {
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
            "Sid": "BlockMostAccessUnlessSignedInWithMFA",
            "Effect": "Deny",
            "NotAction": [
                "iam:CreateVirtualMFADevice",
                "iam:EnableMFADevice",
                "iam:GetUser",
                "iam:ListMFADevices",
                "iam:ListVirtualMFADevices",
                "iam:ResyncMFADevice",
                "sts:GetSessionToken",
            ],
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    ],
}

# A group that may list users and manage access keys (once MFA lets it).
READERS = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "iam:CreateAccessKey",
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        },
    ],
}

# A portal-like identity bounded by tags and group ARNs, after the guide's
# access_iam-tags.html ("Controlling access to and for IAM users and roles") and
# reference_policies_examples_iam_manage-group-membership.html.
TAG_BOUNDED = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ManageManagedUsers",
            "Effect": "Allow",
            "Action": ["iam:CreateLoginProfile", "iam:DeleteLoginProfile", "iam:GetUser"],
            "Resource": "arn:aws:iam::*:user/*",
            "Condition": {"StringEquals": {"iam:ResourceTag/iam-onboard:managed": "true"}},
        },
        {
            "Sid": "NeverTheProtected",
            "Effect": "Deny",
            "Action": "iam:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:ResourceTag/iam-onboard:protected": "true"}},
        },
        {
            "Sid": "OnlyTheseGroups",
            "Effect": "Allow",
            "Action": ["iam:AddUserToGroup", "iam:RemoveUserFromGroup"],
            "Resource": ["arn:aws:iam::*:group/MFA", "arn:aws:iam::*:group/Developers"],
        },
    ],
}


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with start_sandbox(enforce_policies=True) as sandbox:
        yield sandbox


def client(box: Sandbox, service: str = "iam", **credentials: str) -> Client:
    return boto3.client(service, endpoint_url=box.url, region_name="us-east-1", **credentials)


@pytest.fixture
def admin(box: Sandbox) -> Client:
    box.reset()  # the administrator comes back with the published key after a reset
    return client(box, **ADMIN)


def denied(call: Any, **params: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Message"],
    )


def make_user(admin: Client, name: str, tags: dict[str, str] | None = None) -> dict[str, str]:
    """An IAM user with an access key: the keyword arguments of a boto3 client."""
    tag_list = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    admin.create_user(UserName=name, Tags=tag_list)
    key = admin.create_access_key(UserName=name)["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }


def group_with_policy(
    admin: Client, group: str, document: dict[str, Any], *, managed: bool
) -> None:
    admin.create_group(GroupName=group)
    if managed:
        arn = admin.create_policy(PolicyName=f"{group}-policy", PolicyDocument=json.dumps(document))
        admin.attach_group_policy(GroupName=group, PolicyArn=arn["Policy"]["Arn"])
    else:
        admin.put_group_policy(
            GroupName=group, PolicyName="inline", PolicyDocument=json.dumps(document)
        )


def test_unknown_and_inactive_keys_are_refused(box: Sandbox, admin: Client) -> None:
    code, status, _ = denied(client(box, **SANDBOX_CREDENTIALS).list_users)
    assert (code, status) == ("InvalidClientTokenId", 403)
    keys = make_user(admin, "leaver")
    admin.update_access_key(
        UserName="leaver", AccessKeyId=keys["aws_access_key_id"], Status="Inactive"
    )
    assert denied(client(box, **keys).list_users)[0] == "InvalidClientTokenId"
    # The administrator is an IAM user, protected, with AdministratorAccess.
    me = client(box, "sts", **ADMIN).get_caller_identity()
    assert me["Arn"] == f"arn:aws:iam::{SANDBOX_ACCOUNT_ID}:user/sandbox-admin"
    tags = admin.list_user_tags(UserName="sandbox-admin")["Tags"]
    assert {"Key": "iam-onboard:protected", "Value": "true"} in tags
    attached = admin.list_attached_user_policies(UserName="sandbox-admin")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AdministratorAccess"]


def test_a_user_without_policies_is_denied_naming_user_action_and_resource(
    box: Sandbox, admin: Client
) -> None:
    bare = client(box, **make_user(admin, "bare"))
    code, status, message = denied(bare.get_user, UserName="sandbox-admin")
    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: arn:aws:iam::{SANDBOX_ACCOUNT_ID}:user/bare is not authorized to perform: "
        f"iam:GetUser on resource: arn:aws:iam::{SANDBOX_ACCOUNT_ID}:user/sandbox-admin "
        "because no identity-based policy allows the iam:GetUser action"
    )


def test_new_hire_from_key_without_mfa_to_mfa_session(box: Sandbox, admin: Client) -> None:
    group_with_policy(admin, "MFA", MFA_ONLY, managed=True)
    group_with_policy(admin, "Readers", READERS, managed=False)
    keys = make_user(admin, "alice")
    admin.add_user_to_group(GroupName="MFA", UserName="alice")
    admin.add_user_to_group(GroupName="Readers", UserName="alice")
    alice = client(box, **keys)

    # Signed in with a key, no MFA: the group's permissions are blocked by the explicit deny...
    code, status, message = denied(alice.list_access_keys)
    assert (code, status) == ("AccessDenied", 403)
    assert "iam:ListAccessKeys" in message and "explicit deny" in message
    assert denied(alice.create_access_key)[0] == "AccessDenied"
    # ...but she may bind her own MFA device, as the policy intends.
    device = alice.create_virtual_mfa_device(VirtualMFADeviceName="alice")["VirtualMFADevice"]
    serial, seed = device["SerialNumber"], device["Base32StringSeed"].decode()
    totp = pyotp.TOTP(seed)
    now = int(time.time()) // 30  # the current TOTP step (read, never waited on)
    alice.enable_mfa_device(
        UserName="alice",
        SerialNumber=serial,
        AuthenticationCode1=totp.generate_otp(now - 1),
        AuthenticationCode2=totp.generate_otp(now),
    )
    sts = client(box, "sts", **keys)

    # A session without MFA may call no IAM API at all, as on AWS.
    plain = sts.get_session_token()["Credentials"]
    as_plain = client(box, **session_keys(plain))
    assert denied(as_plain.list_users)[:2] == ("InvalidClientTokenId", 403)

    # A wrong code fails like AWS.
    wrong = f"{(int(totp.generate_otp(now)) + 1) % 1_000_000:06d}"
    code, status, message = denied(sts.get_session_token, SerialNumber=serial, TokenCode=wrong)
    assert (code, status) == ("AccessDenied", 403)
    assert message == "MultiFactorAuthentication failed with invalid MFA one time pass code."

    # The MFA session: the groups' permissions apply.
    mfa = sts.get_session_token(SerialNumber=serial, TokenCode=totp.generate_otp(now))
    as_mfa = client(box, **session_keys(mfa["Credentials"]))
    names = [u["UserName"] for u in as_mfa.list_users()["Users"]]
    assert "alice" in names
    assert as_mfa.create_access_key()["AccessKey"]["UserName"] == "alice"
    me = client(box, "sts", **session_keys(mfa["Credentials"])).get_caller_identity()
    assert me["Arn"].endswith(":user/alice")
    # Session credentials without their token are not credentials.
    tokenless = session_keys(mfa["Credentials"])
    del tokenless["aws_session_token"]
    assert denied(client(box, **tokenless).list_users)[0] == "InvalidClientTokenId"


def session_keys(credentials: dict[str, Any]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }


def _generated_runtime_policy() -> dict[str, Any]:
    return runtime_policy(load_settings(secret_key="x" * 40, assignable_groups=["Developers"]))


@pytest.mark.parametrize("which", ["written here", "iam-onboard policy runtime"])
def test_tag_bounded_identity_is_denied_protected_unmanaged_and_other_groups(
    box: Sandbox, admin: Client, which: str
) -> None:
    document = TAG_BOUNDED if which == "written here" else _generated_runtime_policy()
    portal = client(box, **make_user(admin, "portal-like"))
    admin.put_user_policy(
        UserName="portal-like", PolicyName="bounded", PolicyDocument=json.dumps(document)
    )
    for group in ("MFA", "Developers", "Admins"):
        admin.create_group(GroupName=group)
    managed = {"iam-onboard:managed": "true"}
    admin.create_user(UserName="newhire", Tags=[{"Key": k, "Value": v} for k, v in managed.items()])
    admin.create_user(UserName="outsider")
    boss_tags = {**managed, "iam-onboard:protected": "true"}
    admin.create_user(UserName="boss", Tags=[{"Key": k, "Value": v} for k, v in boss_tags.items()])
    admin.create_login_profile(UserName="boss", Password="Boss-password-1")

    code, status, message = denied(portal.delete_login_profile, UserName="boss")
    assert (code, status) == ("AccessDenied", 403)
    assert "user/boss" in message and "explicit deny" in message
    assert admin.get_login_profile(UserName="boss")["LoginProfile"]["UserName"] == "boss"

    code, _, message = denied(
        portal.create_login_profile, UserName="outsider", Password="Pw-123456-x"
    )
    assert code == "AccessDenied" and "no identity-based policy allows" in message
    portal.create_login_profile(UserName="newhire", Password="Pw-123456-x")  # managed: allowed

    code, _, message = denied(portal.add_user_to_group, GroupName="Admins", UserName="newhire")
    assert code == "AccessDenied" and f"{SANDBOX_ACCOUNT_ID}:group/Admins" in message
    portal.add_user_to_group(GroupName="Developers", UserName="newhire")
    groups = admin.list_groups_for_user(UserName="newhire")["Groups"]
    assert [g["GroupName"] for g in groups] == ["Developers"]


def test_create_user_with_tags_also_needs_tag_user(box: Sandbox, admin: Client) -> None:
    # access_tags.html / id_tags_users.html: creating a user with tags needs iam:TagUser too.
    maker = client(box, **make_user(admin, "maker"))
    only_create = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:CreateUser", "Resource": "*"}],
    }
    admin.put_user_policy(UserName="maker", PolicyName="p", PolicyDocument=json.dumps(only_create))
    code, _, message = denied(maker.create_user, UserName="x", Tags=[{"Key": "k", "Value": "v"}])
    assert code == "AccessDenied" and "iam:TagUser" in message
    maker.create_user(UserName="y")
    assert admin.get_user(UserName="y")["User"]["UserName"] == "y"


def test_enforcement_is_off_by_default_and_on_by_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENFORCE_ENV, raising=False)
    with start_sandbox() as plain:
        plain.reset()
        client(plain, **SANDBOX_CREDENTIALS).create_user(UserName="anyone")
    monkeypatch.setenv(ENFORCE_ENV, "1")
    with start_sandbox() as strict:
        assert denied(client(strict, **SANDBOX_CREDENTIALS).list_users)[0] == "InvalidClientTokenId"


def test_invite_and_enrollment_succeed_as_the_runtime_identity(
    box: Sandbox, admin: Client, sqlite_url: str
) -> None:
    # The demo's setup (app/cli/servers.py demo --iam-enforce-policies), in process: bootstrap as
    # sandbox-admin, then the portal runs as iam-onboard-portal holding the runtime policy.
    from fastapi.testclient import TestClient

    from app.demo_identities import PORTAL_USER, as_admin, as_runtime_identity
    from app.main import create_app
    from app.services.bootstrap import bootstrap
    from app.services.portal import CLI_ACTOR
    from tests.conftest import make_portal
    from tests.integration.test_enroll import Newcomer, invite, pyotp_pair

    portal = make_portal(box, sqlite_url, assignable_groups=["Developers"])
    bootstrap(as_admin(portal, box), dry_run=False, actor=CLI_ACTOR)
    admin.create_group(GroupName="Developers")
    runtime = as_runtime_identity(portal, box)
    me = runtime.iam().caller_identity()
    assert me["arn"].endswith(f":user/{PORTAL_USER}")

    link_path = invite(runtime, "hire", extra_groups=["Developers"])
    with TestClient(create_app(runtime)) as browser:
        newcomer = Newcomer(browser, link_path, [])
        newcomer.start()
        _, seed = newcomer.scan()
        done = newcomer.verify(*pyotp_pair(seed))
        assert done.status_code == 303 and done.headers["location"] == "/enroll/done"
    devices = admin.list_mfa_devices(UserName="hire")["MFADevices"]
    assert [d["SerialNumber"] for d in devices] == [
        f"arn:aws:iam::{SANDBOX_ACCOUNT_ID}:mfa/iam-onboard/hire"
    ]
    groups = {g["GroupName"] for g in admin.list_groups_for_user(UserName="hire")["Groups"]}
    assert groups == {"MFA", "Developers"}
    assert admin.get_login_profile(UserName="hire")["LoginProfile"]["UserName"] == "hire"
    portal.db.dispose()


@pytest.mark.slow  # starts iam-onboard processes
def test_demo_with_enforcement_prints_the_admin_key_and_enforces_the_mfa_group(
    tmp_path: Path,
) -> None:
    demo = start_demo(tmp_path, "--iam-enforce-policies")
    try:
        printed = dict(line.split("=", 1) for line in demo.output if line.startswith("AWS_"))
        keys = {
            "aws_access_key_id": printed["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": printed["AWS_SECRET_ACCESS_KEY"],
        }

        def on_demo(service: str = "iam", **credentials: str) -> Client:
            return boto3.client(
                service, endpoint_url=demo.iam_url, region_name="us-east-1", **credentials
            )

        admin = on_demo(**keys)
        assert denied(on_demo(**SANDBOX_CREDENTIALS).list_users)[0] == "InvalidClientTokenId"
        # The bootstrap ran as the administrator; the portal runs as its own IAM user.
        assert admin.get_group(GroupName="MFA")["Group"]["GroupName"] == "MFA"
        assert "iam-onboard-portal" in {u["UserName"] for u in admin.list_users()["Users"]}

        group_with_policy(admin, "Readers", READERS, managed=False)
        bob = make_user(admin, "bob")
        for group in ("MFA", "Readers"):
            admin.add_user_to_group(GroupName=group, UserName="bob")
        device = admin.create_virtual_mfa_device(VirtualMFADeviceName="bob")["VirtualMFADevice"]
        serial, totp = device["SerialNumber"], pyotp.TOTP(device["Base32StringSeed"].decode())
        now = int(time.time()) // 30
        admin.enable_mfa_device(
            UserName="bob",
            SerialNumber=serial,
            AuthenticationCode1=totp.generate_otp(now - 1),
            AuthenticationCode2=totp.generate_otp(now),
        )

        bob_iam = on_demo(**bob)
        assert denied(bob_iam.list_users)[:2] == ("AccessDenied", 403)
        # The bootstrapped MFA policy: no self-service key and no device of one's own without
        # MFA, so a leaked key cannot bind an attacker's device.
        assert denied(bob_iam.create_access_key)[0] == "AccessDenied"
        assert denied(bob_iam.create_virtual_mfa_device, VirtualMFADeviceName="evil")[0] == (
            "AccessDenied"
        )
        assert denied(
            bob_iam.enable_mfa_device,
            UserName="bob",
            SerialNumber=serial,
            AuthenticationCode1="123456",
            AuthenticationCode2="654321",
        )[0] == ("AccessDenied")
        sts = on_demo("sts", **bob)
        wrong = f"{(int(totp.generate_otp(now)) + 1) % 1_000_000:06d}"
        assert denied(sts.get_session_token, SerialNumber=serial, TokenCode=wrong)[0] == (
            "AccessDenied"
        )
        session = sts.get_session_token(SerialNumber=serial, TokenCode=totp.generate_otp(now))
        as_mfa = on_demo(**session_keys(session["Credentials"]))
        assert "bob" in {u["UserName"] for u in as_mfa.list_users()["Users"]}
    finally:
        output = demo.stop()
    assert "sandbox-admin-secret" in output  # printed for the operator, by design

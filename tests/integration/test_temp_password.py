"""The temporary console password against the sandbox, which enforces the account's password
policy as AWS does (app/sandbox/passwords.py): typable, and accepted under a strict policy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

from app.main import create_app
from app.sandbox import Sandbox
from app.services import directory
from app.services.portal import Portal
from tests.integration.test_enroll import Newcomer, invite, password_of, pyotp_pair


@pytest.fixture
def new_hire(portal: Portal) -> Iterator[Newcomer]:
    link_path = invite(portal)
    with TestClient(create_app(portal)) as client:
        yield Newcomer(client, link_path, [])


STRICT = {
    "MinimumPasswordLength": 40,
    "RequireSymbols": True,
    "RequireNumbers": True,
    "RequireUppercaseCharacters": True,
    "RequireLowercaseCharacters": True,
}


def test_the_sandbox_refuses_a_password_that_breaks_the_policy(iam_client):
    iam_client.create_user(UserName="bob")
    with pytest.raises(ClientError) as default_rules:
        iam_client.create_login_profile(UserName="bob", Password="alllowercase")
    assert default_rules.value.response["Error"]["Code"] == "PasswordPolicyViolation"
    iam_client.update_account_password_policy(**STRICT)
    with pytest.raises(ClientError) as strict:
        iam_client.create_login_profile(
            UserName="bob", Password="Abcdefgh2345Abcdefgh2345Abcdefgh2345Abcd"
        )
    assert strict.value.response["Error"]["Code"] == "PasswordPolicyViolation"
    assert "symbol" in strict.value.response["Error"]["Message"]
    iam_client.create_login_profile(
        UserName="bob", Password="Abcdefgh2345-Abcdefgh2345-Abcdefgh2345-Ab"
    )
    with pytest.raises(ClientError) as update:
        iam_client.update_login_profile(UserName="bob", Password="short-A2")
    assert update.value.response["Error"]["Code"] == "PasswordPolicyViolation"


def test_aws_accepts_the_typable_password_under_a_policy_requiring_symbols(
    new_hire: Newcomer, portal: Portal, iam_client
):
    iam_client.update_account_password_policy(**STRICT)
    new_hire.start()
    _page, seed = new_hire.scan()
    assert new_hire.verify(*pyotp_pair(seed)).headers["location"] == "/enroll/done"
    password = password_of(new_hire.get("/enroll/done").text)
    assert len(password) >= 40
    assert not set("O0Il1") & set(password)
    assert re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)+", password), password
    # AWS took it: the login profile exists, made with this password under the strict policy.
    profile = iam_client.get_login_profile(UserName="alice")["LoginProfile"]
    assert profile["PasswordResetRequired"] is True


def test_a_login_profile_has_its_own_creation_date(portal: Portal, aws: Sandbox, iam_client):
    iam_client.create_user(UserName="carol")
    user_made = iam_client.get_user(UserName="carol")["User"]["CreateDate"]
    aws.advance_clock(2 * 3600)
    iam_client.create_login_profile(UserName="carol", Password="Abcd-2345-Efgh-6789-Jkmn")
    profile_made = iam_client.get_login_profile(UserName="carol")["LoginProfile"]["CreateDate"]
    assert profile_made - user_made >= timedelta(hours=2) - timedelta(minutes=1)
    # The user page's "since" is the profile's date, not the user's.
    detail = directory.user_detail(portal, "carol")
    assert detail.login_profile_created_at is not None
    assert detail.login_profile_created_at - user_made >= timedelta(hours=1, minutes=59)

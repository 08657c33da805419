"""Where the portal's code has a bug, IAM itself still says no.

The sandbox enforces IAM policies as AWS evaluates them (`start_sandbox(enforce_policies=True)`);
the portal runs as an IAM user holding exactly `iam-onboard policy runtime`'s policy, as the demo
does with `--iam-enforce-policies`. First every journey succeeds under that policy; then the
portal's identity, going around every check in Python (straight to the gateway), is refused on a
protected user, on a user it does not manage and into a group that is not assignable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from fastapi.testclient import TestClient

from app.aws.errors import AwsError
from app.demo_identities import as_admin, as_runtime_identity
from app.main import create_app
from app.sandbox import Sandbox, start_sandbox
from app.sandbox.enforcement import ADMIN_ACCESS_KEY_ID, ADMIN_SECRET_ACCESS_KEY
from app.services.bootstrap import bootstrap
from app.services.lifecycle.adoption import invite_existing_user
from app.services.lifecycle.lost_device import reset_mfa
from app.services.lifecycle.offboarding import offboard
from app.services.portal import CLI_ACTOR, Actor, Portal
from tests.conftest import make_portal
from tests.integration.test_enroll import Newcomer, invite, pyotp_pair

BOSS = Actor("boss@example.com")


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with start_sandbox(enforce_policies=True) as sandbox:
        yield sandbox


@pytest.fixture
def admin(box: Sandbox) -> Any:
    box.reset()
    return boto3.client(
        "iam",
        endpoint_url=box.url,
        region_name="us-east-1",
        aws_access_key_id=ADMIN_ACCESS_KEY_ID,
        aws_secret_access_key=ADMIN_SECRET_ACCESS_KEY,
    )


@pytest.fixture
def runtime(box: Sandbox, admin: Any, sqlite_url: str) -> Iterator[Portal]:
    """The portal as its own IAM user with the runtime policy; the account bootstrapped."""
    portal = make_portal(box, sqlite_url, assignable_groups=["Developers"])
    bootstrap(as_admin(portal, box), dry_run=False, actor=CLI_ACTOR)
    for group in ("Developers", "Admins"):
        admin.create_group(GroupName=group)
    yield as_runtime_identity(portal, box)
    portal.db.dispose()


def _enroll(portal: Portal, link: str) -> None:
    with TestClient(create_app(portal)) as browser:
        newcomer = Newcomer(browser, urlsplit(link).path, [])
        newcomer.start()
        _, seed = newcomer.scan()
        done = newcomer.verify(*pyotp_pair(seed))
        assert done.status_code == 303 and done.headers["location"] == "/enroll/done", done.text


def _groups(admin: Any, name: str) -> set[str]:
    return {g["GroupName"] for g in admin.list_groups_for_user(UserName=name)["Groups"]}


def test_every_journey_succeeds_under_the_runtime_policy(runtime: Portal, admin: Any):
    # Invite and enroll.
    _enroll(runtime, "http://x" + invite(runtime, "hire", extra_groups=["Developers"]))
    assert _groups(admin, "hire") == {"MFA", "Developers"}
    # Lost phone: reset, then enroll again.
    _enroll(runtime, reset_mfa(runtime, user_name="hire", actor=BOSS).link)
    assert len(admin.list_mfa_devices(UserName="hire")["MFADevices"]) == 1
    # Adopt an existing user (send-link), who enrolls and keeps their own password replaced.
    admin.create_user(UserName="legacy")
    admin.create_login_profile(UserName="legacy", Password="Legacy-Passw0rd-x!")
    adopted = invite_existing_user(
        runtime,
        user_name="legacy",
        email="legacy@example.com",
        replace_login_profile=True,
        actor=BOSS,
    )
    _enroll(runtime, adopted.link)
    assert _groups(admin, "legacy") == {"MFA"}
    # Offboard both.
    for name in ("hire", "legacy"):
        offboard(runtime, user_name=name, actor=BOSS)
    remaining = {u["UserName"] for u in admin.list_users()["Users"]}
    assert not {"hire", "legacy"} & remaining


def test_iam_refuses_the_portal_identity_where_its_code_would_not_look(runtime: Portal, admin: Any):
    managed = [{"Key": "iam-onboard:managed", "Value": "true"}]
    admin.create_user(
        UserName="boss", Tags=[*managed, {"Key": "iam-onboard:protected", "Value": "true"}]
    )
    admin.create_login_profile(UserName="boss", Password="Boss-Passw0rd-x!")
    admin.create_user(UserName="outsider")
    admin.create_user(UserName="newhire", Tags=managed)
    iam = runtime.iam()  # the gateway itself: no ownership check in between

    def refused(call: Any, *args: Any) -> str:
        with pytest.raises(AwsError) as caught:
            call(*args)
        return caught.value.aws_code

    assert refused(iam.delete_login_profile, "boss") == "AccessDenied"
    assert refused(iam.tag_user, "boss", {"iam-onboard:protected": "false"}) == "AccessDenied"
    assert refused(iam.create_login_profile, "outsider", "Pw-123456-x-Y") == "AccessDenied"
    assert refused(iam.delete_user, "outsider") == "AccessDenied"
    assert refused(iam.tag_user, "outsider", {"iam-onboard:protected": "true"}) == "AccessDenied"
    assert refused(iam.add_user_to_group, "newhire", "Admins") == "AccessDenied"
    # IAM unchanged.
    assert admin.get_login_profile(UserName="boss")["LoginProfile"]["UserName"] == "boss"
    assert admin.get_user(UserName="outsider")["User"]["UserName"] == "outsider"
    assert _groups(admin, "newhire") == set()

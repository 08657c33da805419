"""Invite from the service and the CLI, against the sandbox over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.awsrequest import AWSResponse
from sqlalchemy import select

from app.errors import Conflict, ValidationError
from app.security.tokens import hash_token
from app.services.invitations import InviteIncomplete, invite_user
from app.services.portal import CLI_ACTOR, Portal
from app.store.models import AuditEvent, Invitation


def _user_state(iam_client, name: str) -> dict:
    groups = [g["GroupName"] for g in iam_client.list_groups_for_user(UserName=name)["Groups"]]
    tags = {t["Key"]: t["Value"] for t in iam_client.list_user_tags(UserName=name)["Tags"]}
    try:
        iam_client.get_login_profile(UserName=name)
        login_profile = True
    except iam_client.exceptions.NoSuchEntityException:
        login_profile = False
    keys = iam_client.list_access_keys(UserName=name)["AccessKeyMetadata"]
    return {"groups": groups, "tags": tags, "login_profile": login_profile, "keys": keys}


def test_invite_creates_user_in_mfa_group_with_tags_and_nothing_else(portal: Portal, iam_client):
    result = invite_user(
        portal,
        user_name="alice",
        email="alice@example.com",
        extra_groups=["developers"],
        actor=CLI_ACTOR,
    )
    state = _user_state(iam_client, "alice")
    assert state["groups"] == ["MFA"]  # extra groups wait until MFA is bound
    assert state["tags"] == {
        "iam-onboard:managed": "true",
        "iam-onboard:invitation": result.invitation_id,
        "iam-onboard:email": "alice@example.com",
    }
    assert state["login_profile"] is False
    assert state["keys"] == []
    assert result.link.startswith("http://portal.test/enroll/")
    token = result.link.rsplit("/", 1)[1]
    assert len(token) >= 22  # ≥128 bits, URL-safe base64
    with portal.db.session() as s:
        inv = s.scalars(select(Invitation)).one()
        assert inv.status == "pending"
        assert inv.extra_groups == ["Developers"]
        assert inv.token_hash == hash_token(token)
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["bootstrap", "iam.create_user", "iam.add_user_to_group", "invite"]


def test_inviting_the_same_user_again_creates_no_second_user(portal: Portal, iam_client):
    invite_user(portal, user_name="bob", email="bob@example.com", actor=CLI_ACTOR)
    with pytest.raises(Conflict, match="already invited"):
        invite_user(portal, user_name="bob", email="bob@example.com", actor=CLI_ACTOR)
    with pytest.raises(Conflict):
        invite_user(portal, user_name="BOB", email="bob@example.com", actor=CLI_ACTOR)
    names = [u["UserName"] for u in iam_client.list_users()["Users"]]
    assert names == ["bob"]


def test_an_existing_iam_user_is_not_taken_over(portal: Portal, iam_client):
    iam_client.create_user(UserName="carol")
    with pytest.raises(Conflict, match="already exists"):
        invite_user(portal, user_name="carol", email="carol@example.com", actor=CLI_ACTOR)
    assert [g for g in iam_client.list_groups_for_user(UserName="carol")["Groups"]] == []


@pytest.mark.parametrize(
    ("user_name", "email", "groups", "field"),
    [
        ("has space", "a@example.com", [], "user_name"),
        ("x" * 65, "a@example.com", [], "user_name"),
        ("ok", "not-an-email", [], "email"),
        ("ok", "a@example.com", ["Admins"], "groups"),
    ],
)
def test_bad_input_names_its_field_and_touches_nothing(
    portal: Portal, iam_client, user_name, email, groups, field
):
    with pytest.raises(ValidationError) as err:
        invite_user(portal, user_name=user_name, email=email, extra_groups=groups, actor=CLI_ACTOR)
    assert err.value.field == field
    assert iam_client.list_users()["Users"] == []


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_kwargs):
        yield self._body


def _aws_error(code: str, status: int) -> AWSResponse:
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>injected {code}</Message></Error><RequestId>req-{code}</RequestId>"
        "</ErrorResponse>"
    ).encode()
    return AWSResponse("https://iam.amazonaws.com/", status, {}, _Raw(body))


def _inject(portal: Portal, operation: str, failures: list[tuple[str, int]]) -> list[str]:
    """A before-send hook: runs inside botocore's retry loop, so retries see each failure."""
    seen: list[str] = []
    pending = list(failures)

    def hook(request, **_kwargs):
        seen.append(operation)
        if pending:
            code, status = pending.pop(0)
            return _aws_error(code, status)
        return None

    iam_client, _sts = portal.iam_clients
    iam_client.meta.events.register(f"before-send.iam.{operation}", hook)
    return seen


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_throttling_twice_then_success_creates_the_user_once(portal: Portal, iam_client):
    seen = _inject(portal, "CreateUser", [("Throttling", 400), ("Throttling", 400)])
    invite_user(portal, user_name="dave", email="dave@example.com", actor=CLI_ACTOR)
    assert len(seen) == 3  # two throttled attempts, then the one that created the user
    assert [u["UserName"] for u in iam_client.list_users()["Users"]] == ["dave"]
    assert [g["GroupName"] for g in iam_client.list_groups_for_user(UserName="dave")["Groups"]] == [
        "MFA"
    ]


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_throttling_past_the_retries_says_so_and_leaves_no_user(portal: Portal, iam_client):
    _inject(portal, "CreateUser", [("Throttling", 400)] * 3)
    with pytest.raises(Exception, match="throttling"):
        invite_user(portal, user_name="erin", email="erin@example.com", actor=CLI_ACTOR)
    assert iam_client.list_users()["Users"] == []
    # The same invite later goes through.
    invite_user(portal, user_name="erin", email="erin@example.com", actor=CLI_ACTOR)
    assert [u["UserName"] for u in iam_client.list_users()["Users"]] == ["erin"]


def test_group_add_failure_rolls_back_the_user(portal: Portal, iam_client):
    _inject(portal, "AddUserToGroup", [("ServiceFailure", 500)] * 3)
    with pytest.raises(Exception, match="Nothing was left behind"):
        invite_user(portal, user_name="frank", email="frank@example.com", actor=CLI_ACTOR)
    assert iam_client.list_users()["Users"] == []
    invite_user(portal, user_name="frank", email="frank@example.com", actor=CLI_ACTOR)
    assert [
        g["GroupName"] for g in iam_client.list_groups_for_user(UserName="frank")["Groups"]
    ] == ["MFA"]


def test_half_done_invite_is_finished_by_running_it_again(portal: Portal, iam_client):
    # AddUserToGroup fails and so does the rollback: the user is left in no group.
    _inject(portal, "AddUserToGroup", [("ServiceFailure", 500)] * 3)
    _inject(portal, "DeleteUser", [("ServiceFailure", 500)] * 3)
    with pytest.raises(InviteIncomplete, match="Run the same invite again"):
        invite_user(portal, user_name="gina", email="gina@example.com", actor=CLI_ACTOR)
    assert iam_client.list_groups_for_user(UserName="gina")["Groups"] == []
    result = invite_user(portal, user_name="gina", email="gina@example.com", actor=CLI_ACTOR)
    assert [g["GroupName"] for g in iam_client.list_groups_for_user(UserName="gina")["Groups"]] == [
        "MFA"
    ]
    assert len(iam_client.list_users()["Users"]) == 1
    with portal.db.session() as s:
        statuses = [i.status for i in s.scalars(select(Invitation))]
    assert statuses == ["pending"]
    assert result.link


def test_database_never_holds_the_token(portal: Portal, tmp_path: Path):
    result = invite_user(portal, user_name="hana", email="hana@example.com", actor=CLI_ACTOR)
    token = result.link.rsplit("/", 1)[1]
    portal.db.dispose()
    db_file = Path(portal.settings.database_url.removeprefix("sqlite:///"))
    blob = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    assert token.encode() not in blob
    assert hash_token(token).encode() in blob

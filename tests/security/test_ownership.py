"""Bounded authority: the portal acts only on users it manages, never on protected ones.

Each attack of issue 13 as it was reproduced against the portal, now refused: an API token
taking over a user the portal never created, a link for an existing user without a fresh code,
a refused invite rewriting a user's email, adopting a user that holds more than the portal can
grant. What a user would notice is checked: the answer, and IAM left as it was.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, text

from app.errors import Conflict
from app.services.api_tokens import check_scopes, create_api_token
from app.services.invitations import invite_user
from app.services.lifecycle.adoption import invite_existing_user
from app.services.lifecycle.lost_device import reset_mfa
from app.services.lifecycle.offboarding import offboard
from app.services.lifecycle.ownership import NotManaged, ProtectedUser
from app.services.portal import CLI_ACTOR, Actor
from app.store.db import Database
from app.store.models import ApiToken, AuditEvent, Invitation
from tests.security.world import World

EVIL = "attacker@evil.example"


def _iam_state(world: World, name: str) -> dict[str, Any]:
    """What IAM says of a user: everything an attacker would want to change."""
    iam = world.portal.iam()
    return {
        "tags": iam.user_tags(name),
        "groups": sorted(iam.groups_for_user(name)),
        "devices": sorted(d.serial for d in iam.mfa_devices(name)),
        "login_profile": iam.login_profile(name) is not None,
        "keys": len(iam.access_keys(name)),
    }


def _breakglass(world: World, name: str) -> None:
    """An admin the portal never created: in an Admins group, with its own MFA device."""
    iam = world.portal.iam()
    if iam.get_group("Admins") is None:
        iam.create_group("Admins")
    iam.create_user(name, tags={})
    iam.add_user_to_group(name, "Admins")
    world.portal.iam_clients[0].create_login_profile(UserName=name, Password="Own-Passw0rd-x!")


def _token(world: World, name: str, *scopes: str) -> dict[str, str]:
    raw = create_api_token(world.portal, name=name, scopes=scopes or ("users:read",))
    return {"Authorization": f"Bearer {raw}"}


def _api(world: World, method: str, path: str, headers: dict[str, str], body: Any = None):
    world.client.cookies.clear()
    return world.client.request(method, path, headers=headers, json=body)


def test_a_default_token_cannot_take_over_a_user_the_portal_did_not_create(world: World):
    _breakglass(world, "breakglass")
    before = _iam_state(world, "breakglass")
    default = {"Authorization": f"Bearer {create_api_token(world.portal, name='hr-default')}"}
    every = _token(world, "hr-all", "users:lifecycle", "users:adopt", "users:delete", "users:read")
    calls = [
        ("POST", "/api/v1/users/breakglass/reset-mfa", {"email": EVIL}),
        ("POST", "/api/v1/users/breakglass/resend", None),
        ("POST", "/api/v1/users/breakglass/send-link", {"email": EVIL}),
        ("DELETE", "/api/v1/users/breakglass", None),
    ]
    for method, path, body in calls:
        r = _api(world, method, path, default, body)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "insufficient_scope"
        # Every scope still opens nothing on a user the portal does not own.
        r = _api(world, method, path, every, body)
        assert r.status_code in (403, 404), (path, r.text)
        assert "link" not in r.json()
    assert _iam_state(world, "breakglass") == before


def test_a_lifecycle_token_resets_a_managed_user_to_the_email_on_record(world: World):
    invite_user(world.portal, user_name="mia", email="mia@example.com", actor=CLI_ACTOR)
    lifecycle = _token(world, "hr-lifecycle", "users:lifecycle")
    r = _api(world, "POST", "/api/v1/users/mia/reset-mfa", lifecycle, {"email": EVIL})
    assert r.status_code == 200, r.text
    with world.portal.db.session() as s:
        newest = s.scalars(
            select(Invitation)
            .where(Invitation.user_name_key == "mia")
            .order_by(Invitation.created_at.desc())
        ).first()
    assert newest is not None and newest.email == "mia@example.com"
    assert world.portal.iam().user_tags("mia")["iam-onboard:email"] == "mia@example.com"


def test_an_admin_without_a_fresh_code_gets_no_link_for_an_existing_user(world: World):
    world.portal.iam().create_user("quiet", tags={})
    before = _iam_state(world, "quiet")
    ada = world.personas()["admin_a"]
    form = {
        "csrf_token": ada.csrf,
        "email": EVIL,
        "enforce": "now",
        "replace_login_profile": "1",
    }
    r = world.submit(ada, "/admin/users/quiet/send-link", form)
    assert r.status_code == 400
    assert "/enroll/" not in r.text
    assert _iam_state(world, "quiet") == before
    # The same with a code that is not fresh (one already used) changes nothing either.
    code = world.code("admin_a")
    form["code"] = code
    assert world.submit(ada, "/admin/users/quiet/send-link", form).status_code == 200
    again = {**form, "code": code}
    world.portal.iam().create_user("quiet2", tags={})
    r = world.submit(ada, "/admin/users/quiet2/send-link", again)
    assert r.status_code == 400 and "/enroll/" not in r.text
    assert world.portal.iam().user_tags("quiet2") == {}


def test_a_user_in_a_group_outside_the_assignable_ones_cannot_be_adopted(world: World):
    _breakglass(world, "ops-admin")
    before = _iam_state(world, "ops-admin")
    ada = world.personas()["admin_a"]
    page = world.send(ada, "GET", "/admin/users/ops-admin/send-link")
    assert page.status_code == 200 and "cannot be adopted from the browser" in page.text
    form = {"csrf_token": ada.csrf, "email": EVIL, "enforce": "now"}
    form["code"] = world.code("admin_a")
    r = world.submit(ada, "/admin/users/ops-admin/send-link", form)
    assert r.status_code == 403 and "/enroll/" not in r.text
    adopt = _token(world, "hr-adopt", "users:adopt")
    r = _api(world, "POST", "/api/v1/users/ops-admin/send-link", adopt, {"email": EVIL})
    assert r.status_code == 403 and r.json()["error"]["code"] == "privileged_user"
    assert "group Admins" in r.json()["error"]["message"]
    assert _iam_state(world, "ops-admin") == before

    # On the server, the CLI may adopt it on purpose; the audit says so.
    result = invite_existing_user(
        world.portal,
        user_name="ops-admin",
        email="ops@example.com",
        allow_privileged=True,
        actor=CLI_ACTOR,
    )
    assert result.link
    with world.portal.db.session() as s:
        adopted = s.scalars(
            select(AuditEvent).where(
                AuditEvent.target_user == "ops-admin", AuditEvent.action == "adopt"
            )
        ).one()
    assert "privileged" in (adopted.detail or "") and "group Admins" in (adopted.detail or "")


def test_a_refused_invite_of_frank_leaves_franks_email_as_it_was(world: World):
    invite_user(world.portal, user_name="frank", email="frank@example.com", actor=CLI_ACTOR)
    with pytest.raises(Conflict):
        invite_user(world.portal, user_name="FRANK", email="a2@example.com", actor=CLI_ACTOR)
    result = reset_mfa(world.portal, user_name="frank", actor=CLI_ACTOR)
    assert result.email == "frank@example.com"
    assert world.portal.iam().user_tags("frank")["iam-onboard:email"] == "frank@example.com"
    # An email given to reset is a check, never a change.
    with pytest.raises(Exception, match="email on record"):
        reset_mfa(world.portal, user_name="frank", email="a2@example.com", actor=CLI_ACTOR)


def test_a_protected_user_is_never_touched_whatever_the_path(world: World):
    iam = world.portal.iam()
    iam.create_user(
        "root-ish",
        tags={
            "iam-onboard:protected": "TRUE",
            "iam-onboard:managed": "true",
            "iam-onboard:email": "root@example.com",
        },
    )
    before = _iam_state(world, "root-ish")
    boss = Actor("boss@example.com")
    for call in (
        lambda: reset_mfa(world.portal, user_name="root-ish", actor=boss),
        lambda: offboard(world.portal, user_name="root-ish", actor=boss),
        lambda: invite_existing_user(
            world.portal,
            user_name="root-ish",
            email="root@example.com",
            allow_privileged=True,
            actor=CLI_ACTOR,
        ),
    ):
        with pytest.raises(ProtectedUser):
            call()
    with pytest.raises(NotManaged):
        iam.create_user("stranger-user", tags={})
        offboard(world.portal, user_name="stranger-user", actor=boss)
    assert _iam_state(world, "root-ish") == before


def test_changing_a_users_email_needs_a_fresh_code(world: World):
    invite_user(world.portal, user_name="nora", email="nora@example.com", actor=CLI_ACTOR)
    ada = world.personas()["admin_a"]
    page = world.send(ada, "GET", "/admin/users/nora")
    assert 'action="/admin/users/nora/email"' in page.text
    r = world.submit(ada, "/admin/users/nora/email", {"csrf_token": ada.csrf, "email": EVIL})
    assert r.status_code == 400
    assert world.portal.iam().user_tags("nora")["iam-onboard:email"] == "nora@example.com"
    form = {"csrf_token": ada.csrf, "email": "nora.new@example.com"}
    form["email_code"] = world.code("admin_a")
    r = world.submit(ada, "/admin/users/nora/email", form)
    assert r.status_code == 200, r.text
    assert world.portal.iam().user_tags("nora")["iam-onboard:email"] == "nora.new@example.com"
    with world.portal.db.session() as s:
        waiting = s.scalars(select(Invitation).where(Invitation.user_name_key == "nora")).one()
    assert waiting.email == "nora.new@example.com"  # resend now goes there


def test_scopes_are_checked_and_tokens_made_before_scopes_keep_what_they_could_do(tmp_path):
    with pytest.raises(Exception, match="Unknown scope"):
        check_scopes(["users:everything"])
    db = Database(f"sqlite:///{tmp_path}/old.db")
    command.upgrade(db.alembic_config(), "0002")
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_tokens (id, name, token_hash, created_at) "
                "VALUES ('t1', 'legacy', 'h', '2026-11-01 00:00:00')"
            )
        )
    db.migrate()
    with db.session() as s:
        token = s.get(ApiToken, "t1")
        assert token is not None
        assert sorted(token.scopes) == sorted(
            ["users:read", "invitations:write", "users:lifecycle", "users:delete"]
        )
    db.dispose()

"""The lifecycle through the JSON API: resend, revoke, reset-mfa, DELETE (offboard)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.api_tokens import SCOPES, create_api_token
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Portal
from tests.integration.lifecycle_support import build_busy_user, enroll, has_login_profile


@pytest.fixture
def client(portal: Portal) -> Iterator[TestClient]:
    with TestClient(create_app(portal), base_url="http://portal.test") as c:
        yield c


@pytest.fixture
def hr(portal: Portal) -> dict[str, str]:
    """A token with every scope: what each route does (scopes: tests/security/test_ownership.py)."""
    token = create_api_token(portal, name="hr-system", scopes=list(SCOPES))
    return {"Authorization": f"Bearer {token}"}


def user_names(iam_client) -> list[str]:
    return [u["UserName"] for u in iam_client.list_users()["Users"]]


def landing(client: TestClient, link: str) -> int:
    return client.get(link.removeprefix("http://portal.test")).status_code


def test_resend_gives_a_new_link_and_kills_the_old_one(portal: Portal, client, hr):
    first = invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    r = client.post("/api/v1/users/ALICE/resend", headers=hr)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"user_name", "link", "expires_at", "mailed"}
    assert body["user_name"] == "alice" and body["link"] != first.link
    assert body["mailed"] is False  # no SMTP and not the sandbox: nothing was mailed
    assert landing(client, first.link) == 404
    assert landing(client, body["link"]) == 200


def test_revoke_and_revoke_with_delete(portal: Portal, client, hr, iam_client):
    erin = invite_user(portal, user_name="erin", email="erin@example.com", actor=CLI_ACTOR)
    r = client.post("/api/v1/users/erin/revoke", headers=hr)
    assert r.status_code == 200, r.text
    assert r.json() == {"user_name": "erin", "user_deleted": False}
    assert landing(client, erin.link) == 404
    assert user_names(iam_client) == ["erin"]

    invite_user(portal, user_name="frank", email="frank@example.com", actor=CLI_ACTOR)
    r = client.post("/api/v1/users/frank/revoke", json={"delete_user": True}, headers=hr)
    assert r.status_code == 200, r.text
    assert r.json() == {"user_name": "frank", "user_deleted": True}
    assert user_names(iam_client) == ["erin"]


def test_revoke_with_delete_of_an_enrolled_user_is_a_409_and_changes_nothing(
    portal: Portal, client, hr, iam_client
):
    gina = invite_user(portal, user_name="gina", email="gina@example.com", actor=CLI_ACTOR)
    enroll(portal, gina.link)
    r = client.post("/api/v1/users/gina/revoke", json={"delete_user": True}, headers=hr)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    assert "already enrolled" in r.json()["error"]["message"]
    assert user_names(iam_client) == ["gina"]


def test_reset_mfa_removes_devices_and_password_and_returns_a_new_link(
    portal: Portal, client, hr, iam_client
):
    ivy = invite_user(portal, user_name="ivy", email="ivy@example.com", actor=CLI_ACTOR)
    seed1 = enroll(portal, ivy.link)
    r = client.post("/api/v1/users/ivy/reset-mfa", headers=hr)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_name"] == "ivy" and body["link"].startswith("http://portal.test/enroll/")
    assert iam_client.list_mfa_devices(UserName="ivy")["MFADevices"] == []
    assert not has_login_profile(iam_client, "ivy")
    assert enroll(portal, body["link"]) != seed1


def test_reset_mfa_of_nomail_created_outside_the_portal_is_now_refused_even_with_an_email(
    client, hr, iam_client
):
    # Before issue 13 this answered 200 and mailed a link to whatever address the body gave.
    iam_client.create_user(UserName="nomail")
    for body in (None, {"email": "n@example.com"}):
        r = client.post("/api/v1/users/nomail/reset-mfa", json=body, headers=hr)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_managed"
    assert iam_client.list_user_tags(UserName="nomail")["Tags"] == []
    # A managed user without an email on record gets no link either: nobody to send it to.
    iam_client.tag_user(UserName="nomail", Tags=[{"Key": "iam-onboard:managed", "Value": "true"}])
    r = client.post("/api/v1/users/nomail/reset-mfa", json={"email": "n@example.com"}, headers=hr)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"


def test_delete_of_mallory_created_outside_the_portal_is_now_refused(client, hr, iam_client):
    # Before issue 13 this answered 200 and deleted a user the portal never created.
    build_busy_user(iam_client, "mallory", managed=False)
    r = client.delete("/api/v1/users/mallory", headers=hr)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_managed"
    assert iam_client.get_user(UserName="mallory")["User"]["UserName"] == "mallory"
    assert len(iam_client.list_access_keys(UserName="mallory")["AccessKeyMetadata"]) == 2


def test_delete_offboards_a_managed_user(portal: Portal, client, hr, iam_client):
    made = build_busy_user(iam_client, "mallory")
    r = client.delete("/api/v1/users/mallory", headers=hr)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_name"] == "mallory"
    removed = "\n".join(body["removed"])
    for item in [*made["keys"], made["cert"], made["ssh"], made["device"], made["policy"]]:
        assert item in removed
    assert body["removed"][-1] == "IAM user mallory"
    assert user_names(iam_client) == []


def test_without_a_token_is_401_and_an_unknown_user_is_404(portal: Portal, client, hr, iam_client):
    invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    calls = [
        ("post", "/api/v1/users/{}/resend"),
        ("post", "/api/v1/users/{}/revoke"),
        ("post", "/api/v1/users/{}/reset-mfa"),
        ("delete", "/api/v1/users/{}"),
    ]
    for method, path in calls:
        r = client.request(method, path.format("alice"))
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthorized"
        r = client.request(method, path.format("ghost"), headers=hr)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
        assert "ghost" in r.json()["error"]["message"]
    assert user_names(iam_client) == ["alice"]
    r = client.post("/api/v1/users/alice/resend", headers=hr)
    assert r.status_code == 200  # untouched by the refused calls: still resendable


def test_openapi_documents_the_lifecycle_endpoints(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in (
        ("/api/v1/users/{name}/resend", "post"),
        ("/api/v1/users/{name}/revoke", "post"),
        ("/api/v1/users/{name}/reset-mfa", "post"),
        ("/api/v1/users/{name}", "delete"),
    ):
        operation = paths[path][method]
        assert "TOTP" in operation["description"]  # no step-up with a token, and why
        assert "200" in operation["responses"] and "404" in operation["responses"]
        assert operation["security"]
    schemas = spec["components"]["schemas"]
    assert set(schemas["LinkOut"]["properties"]) == {"user_name", "link", "expires_at", "mailed"}
    assert set(schemas["OffboardOut"]["properties"]) == {"user_name", "removed"}

"""The JSON API and its tokens, against the sandbox over real HTTP."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.errors import Conflict, ValidationError
from app.main import create_app
from app.sandbox import Sandbox
from app.services.api_tokens import authenticate, create_api_token
from app.services.bootstrap import bootstrap
from app.services.portal import CLI_ACTOR, Portal
from app.store.models import ApiToken, AuditEvent, IdempotencyRecord
from tests.conftest import make_portal
from tests.faultproxy import FaultProxy
from tests.helpers import start_demo

ALICE = {"user_name": "alice", "email": "alice@example.com", "groups": ["Developers"]}


@pytest.fixture
def portal(aws: Sandbox, database_url: str) -> Iterator[Portal]:
    """Like conftest's, on SQLite and on PostgreSQL: idempotency leans on the database."""
    p = make_portal(aws, database_url, assignable_groups=["Developers", "ReadOnly"])
    bootstrap(p, dry_run=False, actor=CLI_ACTOR)
    for group in ("Developers", "ReadOnly"):
        p.iam().create_group(group)
    yield p
    p.db.dispose()


@pytest.fixture
def client(portal: Portal) -> Iterator[TestClient]:
    with TestClient(create_app(portal), base_url="http://portal.test") as c:
        yield c


@pytest.fixture
def hr(portal: Portal) -> dict[str, str]:
    """The HR system's Authorization header."""
    return {"Authorization": f"Bearer {create_api_token(portal, name='hr-system')}"}


def iam_users(iam_client) -> list[str]:
    return [u["UserName"] for u in iam_client.list_users()["Users"]]


def test_users_without_a_valid_token_is_401(portal: Portal, client: TestClient, hr):
    for headers in (
        {},
        {"Authorization": "Bearer iob_not-a-real-token"},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": hr["Authorization"] + "x"},
    ):
        r = client.get("/api/v1/users", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"
        assert "API token" in r.json()["error"]["message"]
    r = client.post("/api/v1/invitations", json=ALICE)
    assert r.status_code == 401

    ok = client.get("/api/v1/users", headers=hr)
    assert ok.status_code == 200
    assert ok.json()["users"] == [] and ok.json()["refreshed_at"] is None

    with portal.db.session() as s:
        s.execute(update(ApiToken).values(revoked_at=portal.clock()))
    assert client.get("/api/v1/users", headers=hr).status_code == 401


def test_a_token_is_shown_once_and_stored_hashed(portal: Portal):
    token = create_api_token(portal, name="ci")
    assert token.startswith("iob_") and len(token) >= 4 + 43  # 256 random bits
    with portal.db.session() as s:
        row = s.scalars(select(ApiToken)).one()
    assert token not in (row.token_hash, row.name)
    found = authenticate(portal, token)
    assert found is not None and found.name == "ci" and found.last_used_at is not None
    with pytest.raises(Conflict, match="already exists"):
        create_api_token(portal, name="ci")
    with pytest.raises(ValidationError):
        create_api_token(portal, name="  ")


def test_the_same_idempotency_key_twice_gives_one_user(
    portal: Portal, client: TestClient, hr, iam_client
):
    headers = {**hr, "Idempotency-Key": "hr-4711"}
    first = client.post("/api/v1/invitations", json=ALICE, headers=headers)
    assert first.status_code == 201, first.text
    answer = first.json()
    assert answer["user_name"] == "alice"
    assert answer["link"].startswith("http://portal.test/enroll/")

    # The same body in another key order and spacing is the same request.
    body = json.dumps(
        {"groups": ["Developers"], "email": "alice@example.com", "user_name": "alice"}
    )
    again = client.post(
        "/api/v1/invitations",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.json() == answer
    assert again.headers["idempotent-replayed"] == "true"
    assert iam_users(iam_client) == ["alice"]

    other = client.post(
        "/api/v1/invitations", json={**ALICE, "email": "al@example.com"}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"

    # Another key for the same person: the invite itself refuses a second user.
    dup = client.post("/api/v1/invitations", json=ALICE, headers={**hr, "Idempotency-Key": "2"})
    assert dup.status_code == 409
    assert "already invited" in dup.json()["error"]["message"]
    assert iam_users(iam_client) == ["alice"]

    # The stored answer holds the link, so it is kept encrypted.
    token = answer["link"].rsplit("/", 1)[1]
    with portal.db.session() as s:
        stored = [json.dumps(r.response) for r in s.scalars(select(IdempotencyRecord))]
    assert stored and not any(token in r or "alice@example.com" in r for r in stored)


def test_concurrent_requests_with_one_key_make_one_user(portal: Portal, hr, iam_client):
    app = create_app(portal)
    answers: list[tuple[int, dict]] = []
    start = threading.Barrier(4)

    def post() -> None:
        with TestClient(app, base_url="http://portal.test") as c:
            start.wait()
            r = c.post("/api/v1/invitations", json=ALICE, headers={**hr, "Idempotency-Key": "same"})
            answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [body for status, body in answers if status == 201]
    waiting = [body for status, body in answers if status == 409]
    assert created and len(created) + len(waiting) == 4, answers
    assert all(body == created[0] for body in created)  # replays of the one answer
    assert all(b["error"]["code"] == "idempotency_key_in_progress" for b in waiting), answers
    assert iam_users(iam_client) == ["alice"]


def test_a_retry_after_an_aws_failure_runs_again(aws: Sandbox, sqlite_url: str, iam_client):
    proxy = FaultProxy(aws.url)
    try:
        portal = make_portal(aws, sqlite_url, endpoint=proxy.url)
        bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
        headers = {
            "Authorization": f"Bearer {create_api_token(portal, name='hr')}",
            "Idempotency-Key": "k",
        }
        body = {"user_name": "alice", "email": "alice@example.com"}
        proxy.inject("ServiceFailure", action="CreateUser", times=3)  # every attempt
        with TestClient(create_app(portal), base_url="http://portal.test") as client:
            failed = client.post("/api/v1/invitations", json=body, headers=headers)
            assert failed.status_code == 503
            assert failed.json()["error"]["code"] == "aws_unavailable"
            retried = client.post("/api/v1/invitations", json=body, headers=headers)
            assert retried.status_code == 201, retried.text
            assert "idempotent-replayed" not in retried.headers
        assert iam_users(iam_client) == ["alice"]
        portal.db.dispose()
    finally:
        proxy.stop()


def test_invitation_errors_have_one_shape(client: TestClient, hr, iam_client):
    cases = [
        ({**ALICE, "email": "not-an-email"}, 400, "invalid"),
        ({**ALICE, "groups": ["Admins"]}, 400, "invalid"),
        ({"user_name": "alice"}, 422, "invalid"),  # FastAPI's own body check
        ({**ALICE, "grups": []}, 422, "invalid"),  # a typo is not silently ignored
    ]
    for body, status, code in cases:
        r = client.post("/api/v1/invitations", json=body, headers=hr)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["message"]
    iam_client.create_user(UserName="carol")
    taken = client.post("/api/v1/invitations", json={**ALICE, "user_name": "carol"}, headers=hr)
    assert taken.status_code == 409
    assert set(taken.json()) == {"error"}
    assert iam_users(iam_client) == ["carol"]


def test_users_list_filters_pages_and_refreshes(client: TestClient, hr, iam_client):
    for name in ("carol", "dave", "erin"):
        iam_client.create_user(UserName=name)
    client.post("/api/v1/invitations", json=ALICE, headers=hr)

    before = client.get("/api/v1/users", headers=hr).json()
    assert [u["user_name"] for u in before["users"]] == ["alice"]  # known to the portal at once

    data = client.get("/api/v1/users", params={"refresh": 1}, headers=hr).json()
    assert data["total"] == 4 and data["refreshed_at"] is not None
    assert data["counts"]["invited"] == 1 and data["counts"]["no MFA"] == 3
    [alice] = [u for u in data["users"] if u["user_name"] == "alice"]
    assert alice["status"] == "invited" and alice["email"] == "alice@example.com"
    assert alice["invited_by"] == "api:hr-system" and alice["in_mfa_group"] is True

    no_mfa = client.get(
        "/api/v1/users", params={"status": "no_mfa", "per_page": 2, "page": 2}, headers=hr
    ).json()
    assert (no_mfa["total"], no_mfa["pages"], no_mfa["page"]) == (3, 2, 2)
    assert [u["user_name"] for u in no_mfa["users"]] == ["erin"]
    past = client.get("/api/v1/users", params={"page": 9}, headers=hr).json()
    assert past["users"] == []

    bad = client.get("/api/v1/users", params={"status": "happy"}, headers=hr)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    assert client.get("/api/v1/users", params={"per_page": 0}, headers=hr).status_code == 422


def test_one_user_in_detail(portal: Portal, client: TestClient, hr):
    client.post("/api/v1/invitations", json=ALICE, headers=hr)
    r = client.get("/api/v1/users/alice", headers=hr)
    assert r.status_code == 200
    alice = r.json()
    assert alice["status"] == "invited" and alice["exists_in_iam"] is True
    assert alice["groups"] == ["MFA"] and alice["mfa_devices"] == []
    assert alice["console_password"] is False and alice["access_keys"] == []
    assert alice["invitation"]["status"] == "pending"
    assert alice["invitation"]["extra_groups"] == ["Developers"]
    assert {e["action"] for e in alice["events"]} >= {"iam.create_user", "invite"}
    assert {e["actor"] for e in alice["events"]} == {"api:hr-system"}
    assert "token_hash" not in r.text

    missing = client.get("/api/v1/users/nobody", headers=hr)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    with portal.db.session() as s:
        ips = set(s.scalars(select(AuditEvent.source_ip).where(AuditEvent.actor.like("api:%"))))
    assert ips == {"testclient"}


def test_openapi_documents_the_api(client: TestClient):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/api/v1/invitations", "/api/v1/users", "/api/v1/users/{name}"} <= set(paths)
    assert not any(p.startswith("/admin") for p in paths)
    post = paths["/api/v1/invitations"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert post["security"] == [{"HTTPBearer": []}]
    assert "401" in post["responses"]
    assert "InvitationIn" in spec["components"]["schemas"]


@pytest.mark.slow  # starts iam-onboard processes
def test_the_cli_token_opens_the_api_of_a_running_portal(tmp_path: Path):
    demo = start_demo(tmp_path)
    try:
        made = demo.cli("create-api-token", "hr-system")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().splitlines()[-1]
        assert "shown only now" in made.stdout
        url = demo.portal_url + "/api/v1/users"
        assert httpx.get(url).status_code == 401
        r = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text

        invited = httpx.post(
            demo.portal_url + "/api/v1/invitations",
            json={"user_name": "newhire", "email": "newhire@example.com"},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k1"},
        )
        assert invited.status_code == 201, invited.text
        status = demo.cli("status", "--json")
        assert status.returncode == 0, status.stderr
        [row] = json.loads(status.stdout)
        assert (row["user_name"], row["status"], row["invited_by"]) == (
            "newhire",
            "invited",
            "api:hr-system",
        )
        text = demo.cli("status")
        assert "newhire" in text.stdout and "invited" in text.stdout
        output = demo.stop()
        assert token not in output and invited.json()["link"] not in output
    finally:
        demo.stop()


def test_the_request_log_shows_the_time_spent_waiting_on_aws(
    client: TestClient, hr, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.INFO, logger="iam_onboard.http"):
        r = client.post(
            "/api/v1/invitations", json={"user_name": "carol", "email": "c@example.com"}, headers=hr
        )
        assert r.status_code == 201, r.text
        client.get("/healthz")
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "iam_onboard.http"]
    invite = next(line for line in lines if line.startswith("POST /api/v1/invitations 201"))
    # CreateUser and AddUserToGroup (MFA), each timed, the sum within the request's own time.
    found = re.fullmatch(
        r"POST /api/v1/invitations 201 ([\d.]+)ms \(AWS 2 calls, ([\d.]+)ms\)", invite
    )
    assert found, invite
    assert 0 < float(found.group(2)) <= float(found.group(1))
    health = next(line for line in lines if line.startswith("GET /healthz 200"))
    assert health.endswith("(AWS 0 calls, 0.0ms)")

"""Admin sign-in and step-up through a real OpenID Provider (panva's oidc-provider on loopback),
over real HTTP to a served portal: what the admin sees, what the audit log keeps."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select

from app.sandbox import Sandbox
from app.security.secretbox import _PREFIX as SEALED
from app.services.admins import create_admin
from app.services.doctor import run_checks
from app.services.portal import CLI_ACTOR
from app.services.sessions import create_session
from app.store.models import Admin, WebSession
from tests.conftest import make_portal
from tests.helpers import Clock, csrf_of, free_port, serve_in_thread, set_up_admin, totp_at
from tests.oidc_support import CLIENT_SECRET, OidcProvider, walk_to_callback
from tests.sso_portal import SsoPortal, serve_sso_portal

MANAGED = [{"Key": "iam-onboard:managed", "Value": "true"}]


@pytest.fixture
def sso(aws: Sandbox, sqlite_url: str, oidc_provider: OidcProvider) -> Iterator[SsoPortal]:
    yield from serve_sso_portal(aws, sqlite_url, oidc_provider)


def _refusal(r: httpx.Response) -> str:
    assert r.status_code == 403, r.text[:500]
    return html.unescape(r.text.split('id="refusal">')[1].split("</p>")[0])


def _signed_out(sso: SsoPortal) -> bool:
    r = sso.client.get(f"{sso.url}/admin/dashboard", follow_redirects=False)
    return r.status_code == 303 and "/admin/sign-in" in r.headers["location"]


def test_an_allowed_user_signs_in_with_the_provider_and_needs_no_password(sso: SsoPortal):
    page = sso.client.get(f"{sso.url}/admin/sign-in")
    assert "Sign in with Test IdP" in page.text
    # The flow's secrets stay on the server: only `state` (and the PKCE challenge) travel.
    start = sso.client.get(f"{sso.url}/admin/oidc/start", follow_redirects=False)
    location = start.headers["location"]
    assert location.startswith(f"{sso.provider.issuer}/auth?")
    assert "code_challenge_method=S256" in location and "nonce=" in location
    assert "code_verifier" not in location
    # ...and the PKCE verifier is sealed in the session row like every secret at rest.
    with sso.portal.db.session() as session:
        [row] = session.scalars(select(WebSession).where(WebSession.kind == "oidc_pending"))
        flow = row.data["oidc_flow"]
    challenge = parse_qs(urlsplit(location).query)["code_challenge"][0]
    assert flow["state"] == parse_qs(urlsplit(location).query)["state"][0]
    assert create_s256_code_challenge(flow["verifier"]) != challenge
    assert flow["verifier"].startswith(SEALED)

    r = sso.sign_in("alice")
    assert r.status_code == 303 and r.headers["location"] == "/admin/dashboard"
    dashboard = sso.client.get(f"{sso.url}/admin/dashboard")
    assert dashboard.status_code == 200 and "alice@example.com" in dashboard.text

    with sso.portal.db.session() as session:
        admin = session.scalars(select(Admin)).one()
        assert (admin.email, admin.oidc_subject) == ("alice@example.com", "alice")
        assert admin.password_hash is None and admin.totp_seed_encrypted is None
    [event] = sso.audit("admin.sign_in")
    assert event.outcome == "ok" and event.actor == "alice@example.com"
    assert "subject alice" in (event.detail or "")


@pytest.mark.parametrize(
    ("login", "reason"),
    [
        ("bob", "not in an allowed admin group"),
        ("carol", "email domain elsewhere.test not allowed"),
        ("dave", "email not verified by the provider"),
    ],
)
def test_a_user_outside_the_allowed_group_or_domain_is_refused(
    sso: SsoPortal, login: str, reason: str
):
    r = sso.sign_in(login)
    assert "not allowed to administer this portal" in _refusal(r)
    assert _signed_out(sso)
    [event] = sso.audit("admin.sign_in")
    assert event.outcome == "failed"
    assert reason in (event.detail or "") and f"subject {login}" in (event.detail or "")
    with sso.portal.db.session() as session:
        assert session.scalars(select(Admin)).first() is None


def test_a_replayed_state_is_refused(sso: SsoPortal):
    callback = sso.callback_for("alice")
    assert sso.client.get(callback, follow_redirects=False).status_code == 303
    sso.client.post(
        f"{sso.url}/admin/sign-out",
        data={"csrf_token": csrf_of(sso.client.get(f"{sso.url}/admin/dashboard").text)},
    )
    again = sso.client.get(callback, follow_redirects=False)
    assert "already used or has expired" in _refusal(again)
    assert _signed_out(sso)
    failed = [e for e in sso.audit("admin.sign_in") if e.outcome == "failed"]
    assert "state unknown or already used" in (failed[-1].detail or "")

    # A state of someone's making, while a flow is kept: refused the same way, never a crash.
    sso.client.get(f"{sso.url}/admin/oidc/start", follow_redirects=False)
    forged = sso.client.get(
        f"{sso.url}/admin/oidc/callback", params={"state": "é", "code": "x"}, follow_redirects=False
    )
    assert "already used or has expired" in _refusal(forged)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "another-client"}, "claim not valid: aud"),
        ({"nonce": "not-the-nonce-we-sent"}, "claim not valid: nonce"),
        ({"exp": int(time.time()) - 600, "iat": int(time.time()) - 4200}, "ID token expired"),
        ({"iss": "http://127.0.0.1:1"}, "claim not valid: iss"),
    ],
    ids=["wrong-audience", "nonce-mismatch", "expired", "wrong-issuer"],
)
def test_an_id_token_that_does_not_hold_is_refused(
    sso: SsoPortal, claims: dict[str, Any], reason: str
):
    callback = sso.callback_for("alice")
    sso.provider.next_id_token(claims)
    r = sso.client.get(callback, follow_redirects=False)
    assert "could not be accepted" in _refusal(r)
    assert _signed_out(sso)
    [event] = sso.audit("admin.sign_in")
    assert event.outcome == "failed" and reason in (event.detail or ""), event.detail
    assert "subject alice" in (event.detail or "")


def test_a_rotated_key_is_picked_up_and_an_unknown_key_is_refused(sso: SsoPortal):
    assert sso.sign_in("alice").status_code == 303  # the portal has read the keys (k1)
    sso.client.cookies.clear()

    # The provider starts signing with k2, which its JWKS serves now.
    sso.provider.publish_key("k2")
    callback = sso.callback_for("erin")
    sso.provider.next_id_token(kid="k2")
    r = sso.client.get(callback, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/dashboard"
    sso.client.cookies.clear()

    # A key nobody publishes, under a known kid: the signature does not hold.
    callback = sso.callback_for("erin")
    sso.provider.next_id_token(kid="rogue")
    r = sso.client.get(callback, follow_redirects=False)
    assert "could not be accepted" in _refusal(r)
    failed = [e for e in sso.audit("admin.sign_in") if e.outcome == "failed"]
    assert "signature not valid" in (failed[-1].detail or "")


def _answer_of(sso: SsoPortal, r: httpx.Response) -> httpx.Response:
    """The page answering a form: the POST says 303 (Post/Redirect/Get, app/web/prg.py), the
    GET it leads to shows the answer."""
    assert r.status_code == 303, (r.status_code, r.text[:500])
    return sso.client.get(f"{sso.url}{r.headers['location']}", follow_redirects=False)


def test_step_up_for_offboarding_is_a_fresh_login_at_the_provider(sso: SsoPortal, iam_client: Any):
    iam_client.create_user(UserName="zed", Tags=MANAGED)
    assert sso.sign_in("alice").status_code == 303
    path = "/admin/users/zed/offboard"
    page = sso.client.get(f"{sso.url}{path}")
    assert "Confirm it is you at Test IdP" in page.text
    assert "Code from your authenticator app" not in page.text  # no TOTP for an SSO admin

    refused = sso.client.post(
        f"{sso.url}{path}", data={"csrf_token": csrf_of(page.text), "confirm_name": "zed"}
    )
    refused = _answer_of(sso, refused)
    assert refused.status_code == 400 and "Confirm it is you at Test IdP first" in refused.text
    assert iam_client.get_user(UserName="zed")

    # The provider is asked for a new login (prompt=login, max_age=0): its login page again.
    start = sso.client.get(f"{sso.url}/admin/oidc/step-up?next={path}", follow_redirects=False)
    assert "prompt=login" in start.headers["location"]
    assert "max_age=0" in start.headers["location"]
    callback = walk_to_callback(
        sso.client, start.headers["location"], login="alice", portal_url=sso.url
    )
    back = sso.client.get(callback, follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"] == path
    page = sso.client.get(f"{sso.url}{path}")
    assert "Confirmed at Test IdP" in page.text

    done = sso.client.post(
        f"{sso.url}{path}",
        data={"csrf_token": csrf_of(page.text), "confirm_name": "zed", "code": ""},
    )
    done = _answer_of(sso, done)
    assert done.status_code == 200 and "zed was offboarded" in done.text
    steps = sso.audit("admin.step_up")
    assert [e.outcome for e in steps] == ["ok", "ok"]
    assert "subject alice" in (steps[0].detail or "")
    assert "offboard zed" in (steps[1].detail or "")

    # One fresh login covers one action: the next one asks again.
    iam_client.create_user(UserName="yan", Tags=MANAGED)
    page = sso.client.get(f"{sso.url}/admin/users/yan/offboard")
    assert "Confirm it is you at Test IdP" in page.text


def test_a_step_up_without_a_fresh_login_or_by_someone_else_is_refused(sso: SsoPortal):
    assert sso.sign_in("alice").status_code == 303
    path = "/admin/dashboard"

    start = sso.client.get(f"{sso.url}/admin/oidc/step-up?next={path}", follow_redirects=False)
    callback = walk_to_callback(
        sso.client, start.headers["location"], login="alice", portal_url=sso.url
    )
    # The provider answers with an old login time, as if it had not asked again.
    sso.provider.next_id_token({"auth_time": int(time.time()) - 3600})
    r = sso.client.get(callback, follow_redirects=False)
    assert "did not ask you to sign in again" in _refusal(r)

    start = sso.client.get(f"{sso.url}/admin/oidc/step-up?next={path}", follow_redirects=False)
    callback = walk_to_callback(
        sso.client, start.headers["location"], login="erin", portal_url=sso.url
    )
    r = sso.client.get(callback, follow_redirects=False)
    assert "as someone else" in _refusal(r)
    # Alice is still signed in, and nothing was confirmed.
    assert sso.client.get(f"{sso.url}/admin/dashboard").status_code == 200
    steps = sso.audit("admin.step_up")
    assert [e.outcome for e in steps] == ["failed", "failed"]
    assert "auth_time" in (steps[0].detail or "") and "subject alice" in (steps[0].detail or "")
    assert "subject erin" in (steps[1].detail or "")


@pytest.fixture
def sso_only(aws: Sandbox, sqlite_url: str, oidc_provider: OidcProvider) -> Iterator[SsoPortal]:
    yield from serve_sso_portal(aws, sqlite_url, oidc_provider, local_admins=False)


def test_local_admins_switched_off_are_refused_with_a_clear_page(sso_only: SsoPortal):
    page = sso_only.client.get(f"{sso_only.url}/admin/sign-in")
    assert "Sign in with Test IdP" in page.text
    assert 'name="password"' not in page.text
    r = sso_only.client.post(
        f"{sso_only.url}/admin/sign-in",
        data={"csrf_token": csrf_of(page.text), "email": "root@example.com", "password": "x"},
    )
    assert "switched off" in _refusal(r)
    [event] = sso_only.audit("admin.sign_in")
    assert event.outcome == "failed" and "IAM_ONBOARD_LOCAL_ADMINS=false" in (event.detail or "")
    assert sso_only.sign_in("alice").status_code == 303


def test_the_flow_leaves_no_code_state_or_client_secret_in_the_logs(
    sso: SsoPortal, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    callback = sso.callback_for("alice")
    query = parse_qs(urlsplit(callback).query)
    assert sso.client.get(callback, follow_redirects=False).status_code == 303
    sso.provider.next_id_token({"aud": "another-client"})
    refused = sso.client.get(sso.callback_for("alice"), follow_redirects=False)
    assert refused.status_code == 403
    # What the portal (and its HTTP calls to the provider) logged; the test's own client logs
    # the URLs it opens, which is the browser's business.
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "/admin/oidc/callback" in logged
    for secret in (query["code"][0], query["state"][0], CLIENT_SECRET):
        assert secret not in logged


def test_a_provider_that_cannot_be_reached_is_said_plainly(aws: Sandbox, sqlite_url: str):
    port, dead = free_port(), free_port()
    portal = make_portal(
        aws,
        sqlite_url,
        base_url=f"http://127.0.0.1:{port}",
        oidc_issuer=f"http://127.0.0.1:{dead}",
        oidc_client_id="iam-onboard",
        oidc_client_secret="x",
        oidc_admin_groups=["iam-admins"],
    )
    with serve_in_thread(portal, port=port) as url, httpx.Client(timeout=20) as client:
        page = client.get(f"{url}/admin/sign-in")
        assert "Sign in with 127.0.0.1" in page.text and 'name="password"' in page.text
        r = client.get(f"{url}/admin/oidc/start", follow_redirects=False)
        assert r.status_code == 502
        assert "identity provider cannot be reached" in html.unescape(r.text)
    [check] = [c for c in run_checks(portal) if "identity provider" in c.text]
    assert not check.ok and "cannot be reached" in check.text
    portal.db.dispose()


@pytest.mark.parametrize(
    ("change", "says", "reason"),
    [
        ({"iss": "http://127.0.0.1:1"}, "could not be accepted", "another issuer in the callback"),
        (
            {"error": "access_denied", "code": None},
            "did not sign you in",
            "provider answered access_denied",
        ),
    ],
    ids=["callback-from-another-issuer", "provider-said-no"],
)
def test_a_callback_from_another_issuer_or_with_an_error_is_refused(
    sso: SsoPortal, change: dict[str, str | None], says: str, reason: str
):
    callback = urlsplit(sso.callback_for("alice"))
    query = {k: v[0] for k, v in parse_qs(callback.query).items()}
    query.update(change)
    params = {k: v for k, v in query.items() if v is not None}
    r = sso.client.get(callback._replace(query="").geturl(), params=params, follow_redirects=False)
    assert says in _refusal(r)
    [event] = sso.audit("admin.sign_in")
    assert event.outcome == "failed" and reason in (event.detail or "")


def test_a_local_admin_with_the_same_email_is_linked_and_may_step_up_with_a_code(
    sso: SsoPortal, iam_client: Any
):
    link = create_admin(sso.portal, email="alice@example.com", actor=CLI_ACTOR).link
    clock = sso.portal.clock
    assert isinstance(clock, Clock)
    with httpx.Client(base_url=sso.url, timeout=20) as local:
        seed = set_up_admin(local, urlsplit(link).path, clock)

    assert sso.sign_in("alice").status_code == 303
    with sso.portal.db.session() as session:
        [admin] = session.scalars(select(Admin))
        assert admin.oidc_subject == "alice" and admin.password_hash is not None

    iam_client.create_user(UserName="zed", Tags=MANAGED)
    path = f"{sso.url}/admin/users/zed/offboard"
    page = sso.client.get(path)
    assert "Confirm it is you at Test IdP" in page.text
    assert "Or a code from your authenticator app" in page.text
    clock.advance(seconds=30)
    done = sso.client.post(
        path,
        data={
            "csrf_token": csrf_of(page.text),
            "confirm_name": "zed",
            "code": totp_at(seed, clock.step()),
        },
    )
    done = _answer_of(sso, done)
    assert done.status_code == 200 and "zed was offboarded" in done.text


def test_a_deactivated_admin_is_refused_at_the_next_sign_in(sso: SsoPortal):
    assert sso.sign_in("alice").status_code == 303
    with sso.portal.db.session() as session:
        session.scalars(select(Admin)).one().active = False
    assert _signed_out(sso)  # the open session ends at once
    r = sso.sign_in("alice")
    assert "not allowed to administer" in _refusal(r)
    failed = [e for e in sso.audit("admin.sign_in") if e.outcome == "failed"]
    assert "admin deactivated" in (failed[-1].detail or "")


def test_a_password_session_ends_when_local_admins_are_switched_off(sso_only: SsoPortal):
    link = create_admin(sso_only.portal, email="root@example.com", actor=CLI_ACTOR)
    raw = create_session(
        sso_only.portal, kind="admin", admin_id=link.admin_id, data={"email": link.email}
    )
    sso_only.client.cookies.set("iam_onboard", raw)
    assert _signed_out(sso_only)
    r = sso_only.client.get(f"{sso_only.url}{urlsplit(link.link).path}")
    assert "switched off" in _refusal(r)


def test_doctor_says_the_provider_answers(sso: SsoPortal):
    [check] = [c for c in run_checks(sso.portal) if "identity provider" in c.text]
    assert check.ok and sso.provider.issuer in check.text

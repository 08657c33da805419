"""Admin accounts through the web pages: setup link, password + TOTP, sign-in, lockout, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.security.tokens import hash_token
from app.services.admins import create_admin, unlock_admin
from app.services.admins.lockout import ATTEMPTS_PER_ADDRESS
from app.services.portal import CLI_ACTOR, Portal
from app.services.sessions import create_session
from app.store.models import Admin, AuditEvent, WebSession
from tests.helpers import (
    ADMIN_PASSWORD,
    Clock,
    answer_of,
    csrf_of,
    seed_of,
    set_up_admin,
    sign_in_admin,
    totp_at,
)

ADA = "ada@example.com"
COOKIE = "iam_onboard"
LOCKED = "This account is locked for now after too many failed sign-ins"
NO_MATCH = "This email address and password do not match an admin account."


@pytest.fixture
def clock(portal: Portal) -> Clock:
    c = Clock()
    portal.clock = c
    return c


@pytest.fixture
def client(portal: Portal) -> Iterator[TestClient]:
    with TestClient(create_app(portal), base_url="http://portal.test") as c:
        yield c


@pytest.fixture
def ada_seed(portal: Portal, client: TestClient, clock: Clock) -> str:
    """Ada, an admin who has finished setup; returns her TOTP seed."""
    link = create_admin(portal, email=ADA, actor=CLI_ACTOR).link
    seed = set_up_admin(client, link.removeprefix("http://portal.test"), clock)
    client.cookies.clear()
    return seed


def _refusal_shown(client: TestClient, r, *form_pages: str):  # type: ignore[no-untyped-def]
    """A refusal comes back on its form's page after a redirect (Post/Redirect/Get): that page;
    anything else (the next step) as the POST answered it."""
    if r.status_code == 303 and r.headers["location"].split("?")[0] in form_pages:
        return answer_of(client, r)
    return r


def _password_attempt(client: TestClient, password: str, email: str = ADA):
    page = client.get("/admin/sign-in")
    r = client.post(
        "/admin/sign-in",
        data={"csrf_token": csrf_of(page.text), "email": email, "password": password},
        follow_redirects=False,
    )
    return _refusal_shown(client, r, "/admin/sign-in")


def _code_attempt(client: TestClient, code: str):
    page = client.get("/admin/sign-in/code")
    r = client.post(
        "/admin/sign-in/code",
        data={"csrf_token": csrf_of(page.text), "code": code},
        follow_redirects=False,
    )
    return _refusal_shown(client, r, "/admin/sign-in/code", "/admin/sign-in")


def _signed_in(client: TestClient) -> bool:
    """True when the invite page opens (no redirect to the sign-in page)."""
    r = client.get("/admin/invite", follow_redirects=False)
    assert r.status_code in (200, 303)
    return r.status_code == 200 and "Invite a new hire" in r.text


def _admin_row(portal: Portal, email: str = ADA) -> Admin:
    with portal.db.session() as s:
        return s.scalars(select(Admin).where(Admin.email == email)).one()


def _audit(portal: Portal, action: str) -> list[str | None]:
    with portal.db.session() as s:
        return list(s.scalars(select(AuditEvent.detail).where(AuditEvent.action == action)))


# -- setup --------------------------------------------------------------------------------------
def test_setup_link_password_and_totp_then_sign_in(portal: Portal, client: TestClient, clock):
    setup = create_admin(portal, email="Ada@Example.com", actor=CLI_ACTOR)
    assert setup.link.startswith("http://portal.test/admin/setup/")
    path = setup.link.removeprefix("http://portal.test")
    page = client.get(path)
    assert page.status_code == 200
    assert ADA in page.text and "Choose a password" in page.text

    seed = set_up_admin(client, path, clock)
    row = _admin_row(portal)
    assert row.password_hash and row.password_hash.startswith("$argon2id$")
    assert row.totp_seed_encrypted and seed not in row.totp_seed_encrypted
    assert row.setup_token_hash is None
    # The link is spent: opening it again explains, and sets nothing.
    again = client.get(path)
    assert again.status_code == 404
    assert "already used" in again.text

    signed_out = client.get("/admin/sign-in?m=setup_done")
    assert "Your admin account is ready" in signed_out.text
    before = client.cookies.get(COOKIE)
    r = _password_attempt(client, ADMIN_PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/admin/sign-in/code"
    after_password = client.cookies.get(COOKIE)
    # Half signed in opens nothing yet.
    assert client.get("/admin/invite", follow_redirects=False).status_code == 303
    clock.advance(seconds=30)
    r = _code_attempt(client, totp_at(seed, clock.step()))
    assert r.status_code == 303 and r.headers["location"] == "/admin/dashboard"
    after_code = client.cookies.get(COOKIE)
    assert len({before, after_password, after_code}) == 3  # a new id at each proof
    page = client.get("/admin/invite", follow_redirects=False)
    assert page.status_code == 200
    assert "Invite a new hire" in page.text and f"Signed in as {ADA}" in page.text
    with portal.db.session() as s:
        actions = list(
            s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("admin.%")))
        )
    assert actions == ["admin.create", "admin.setup", "admin.sign_in"]


def test_setup_password_rules(portal: Portal, client: TestClient):
    path = create_admin(portal, email=ADA, actor=CLI_ACTOR).link.removeprefix("http://portal.test")
    cases = [
        ("short pass", "short pass", "Use at least 12 characters."),
        ("ada@example.com!", "ada@example.com!", "Do not use your email address"),
        # Common and breached passwords (NIST SP 800-63B), however long.
        ("aaaaaaaaaaaa", "aaaaaaaaaaaa", "This password is common or easy to guess"),
        ("password1234", "password1234", "This password is common or easy to guess"),
        ("qwertyuiop123", "qwertyuiop123", "This password is common or easy to guess"),
        (
            "a long enough passphrase",
            "a different passphrase",
            "The two passwords are not the same",
        ),
    ]
    for password, confirm, message in cases:
        page = client.get(path)
        r = client.post(
            path,
            data={
                "csrf_token": csrf_of(page.text),
                "password": password,
                "password_confirm": confirm,
            },
            follow_redirects=False,
        )
        r = answer_of(client, r)
        assert r.status_code == 400
        assert message in r.text
        assert password not in r.text  # the form never comes back with the password in it
    assert _admin_row(portal).password_hash is None


def test_setup_refuses_wrong_or_non_consecutive_codes(portal: Portal, client: TestClient, clock):
    path = create_admin(portal, email=ADA, actor=CLI_ACTOR).link.removeprefix("http://portal.test")
    page = client.get(path)
    client.post(
        path,
        data={
            "csrf_token": csrf_of(page.text),
            "password": ADMIN_PASSWORD,
            "password_confirm": ADMIN_PASSWORD,
        },
    )
    page = client.get("/admin/setup/totp")
    seed = seed_of(page.text)
    assert "<svg" in page.text and "otpauth://totp/iam-onboard:ada%40example.com" in page.text
    step = clock.step()
    for code1, code2, message in [
        ("000000", "111111", "These codes do not match"),
        (totp_at(seed, step - 1), totp_at(seed, step - 1), "not one after the other"),
        ("12345", "123456", "Type the 6 digits"),
    ]:
        r = client.post(
            "/admin/setup/totp",
            data={"csrf_token": csrf_of(page.text), "code1": code1, "code2": code2},
        )
        assert r.status_code == 400
        assert message in r.text
        assert seed_of(r.text) == seed  # the same QR code stays on the page
    assert _admin_row(portal).totp_seed_encrypted is None


def test_a_new_setup_link_kills_the_old_one(portal: Portal, client: TestClient):
    first = create_admin(portal, email=ADA, actor=CLI_ACTOR).link
    second = create_admin(portal, email=ADA, actor=CLI_ACTOR).link
    assert client.get(first.removeprefix("http://portal.test")).status_code == 404
    assert client.get(second.removeprefix("http://portal.test")).status_code == 200


def test_setup_link_expires_after_24_hours(portal: Portal, client: TestClient, clock: Clock):
    path = create_admin(portal, email=ADA, actor=CLI_ACTOR).link.removeprefix("http://portal.test")
    clock.advance(hours=24, seconds=1)
    r = client.get(path)
    assert r.status_code == 404 and "expired" in r.text


# -- sign-in ------------------------------------------------------------------------------------
def test_wrong_and_reused_codes_are_refused(portal: Portal, client: TestClient, ada_seed, clock):
    assert _password_attempt(client, ADMIN_PASSWORD).status_code == 303
    r = _code_attempt(client, "000000" if totp_at(ada_seed, clock.step()) != "000000" else "111111")
    assert r.status_code == 400 and "This code is not right" in r.text
    # The two codes typed at setup are spent.
    r = _code_attempt(client, totp_at(ada_seed, clock.step()))
    assert r.status_code == 400 and "already used" in r.text
    clock.advance(seconds=30)
    code = totp_at(ada_seed, clock.step())
    assert _code_attempt(client, code).status_code == 303
    client.cookies.clear()
    assert _password_attempt(client, ADMIN_PASSWORD).status_code == 303
    r = _code_attempt(client, code)
    assert r.status_code == 400 and "already used" in r.text


def test_unknown_email_gets_the_wrong_password_message(client: TestClient, ada_seed):
    wrong = _password_attempt(client, "not the password at all")
    unknown = _password_attempt(client, ADMIN_PASSWORD, email="eve@example.com")
    assert wrong.status_code == unknown.status_code == 400
    assert NO_MATCH in wrong.text and NO_MATCH in unknown.text


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_ten_failures_lock_even_the_right_password_and_code(
    portal: Portal, client: TestClient, ada_seed, clock: Clock
):
    for attempt in range(9):
        r = _password_attempt(client, f"wrong password {attempt}")
        assert r.status_code == 400 and NO_MATCH in r.text
        clock.advance(seconds=60)
    # A wrong code counts the same: the tenth failure locks.
    assert _password_attempt(client, ADMIN_PASSWORD).status_code == 303
    r = _code_attempt(client, "000000" if totp_at(ada_seed, clock.step()) != "000000" else "1")
    assert r.status_code == 429
    assert LOCKED in r.text and "ask another admin" in r.text
    until = clock.now + timedelta(minutes=15)
    assert f"Try again after {until:%H:%M} UTC" in r.text

    clock.advance(seconds=30)
    r = _password_attempt(client, ADMIN_PASSWORD)
    assert r.status_code == 429 and LOCKED in r.text
    assert client.get("/admin/invite", follow_redirects=False).status_code == 303

    # After the lock: the right password and code work, and the count starts again.
    clock.advance(minutes=15)
    sign_in_admin(client, ADA, ada_seed, clock)
    assert _signed_in(client)
    client.cookies.clear()
    for attempt in range(9):
        assert _password_attempt(client, f"wrong again {attempt}").status_code == 400


@pytest.mark.parametrize("email", [ADA, "eve@example.com"])
@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_locks_grow_longer_until_a_success_for_known_and_unknown_emails_alike(
    client: TestClient, ada_seed, clock, email: str
):
    for attempt in range(9):
        _password_attempt(client, f"wrong password {attempt}", email=email)
    r = _password_attempt(client, "wrong password 10", email=email)
    first = clock.now + timedelta(minutes=15)
    assert r.status_code == 429 and f"Try again after {first:%H:%M} UTC" in r.text
    clock.advance(minutes=16)
    r = _password_attempt(client, "one more wrong one", email=email)
    second = clock.now + timedelta(minutes=30)
    assert r.status_code == 429 and f"Try again after {second:%H:%M} UTC" in r.text
    # While locked, nothing is counted: the unlock time stays where it is.
    clock.advance(minutes=1)
    r = _password_attempt(client, "and another", email=email)
    assert r.status_code == 429 and f"Try again after {second:%H:%M} UTC" in r.text


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_unlock_admin_lifts_the_lock(portal: Portal, client: TestClient, ada_seed, clock):
    for attempt in range(10):
        _password_attempt(client, f"wrong password {attempt}")
    assert _password_attempt(client, ADMIN_PASSWORD).status_code == 429
    unlock_admin(portal, email=ADA, actor=CLI_ACTOR)
    sign_in_admin(client, ADA, ada_seed, clock)
    assert _signed_in(client)
    unlocked = _audit(portal, "admin.unlock")
    assert unlocked == [f"{ADA} (was locked)"]


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_too_many_attempts_from_one_address_stop_before_the_password_is_checked(
    client: TestClient, ada_seed, clock: Clock
):
    # Spread over many emails, so no (email, address) lock is reached.
    for attempt in range(ATTEMPTS_PER_ADDRESS):
        r = _password_attempt(client, "wrong", email=f"guess{attempt}@example.com")
        assert r.status_code == 400
    r = _password_attempt(client, ADMIN_PASSWORD)
    assert r.status_code == 429 and "Too many sign-in attempts from your network" in r.text
    clock.advance(minutes=15)
    assert _password_attempt(client, ADMIN_PASSWORD).status_code == 303


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_a_success_resets_the_count(portal: Portal, client: TestClient, ada_seed, clock: Clock):
    for attempt in range(9):
        _password_attempt(client, f"wrong password {attempt}")
    sign_in_admin(client, ADA, ada_seed, clock)
    client.cookies.clear()
    for attempt in range(9):
        r = _password_attempt(client, f"wrong again {attempt}")
        assert r.status_code == 400
    sign_in_admin(client, ADA, ada_seed, clock)
    assert _signed_in(client)


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_failures_older_than_15_minutes_do_not_count(portal, client: TestClient, ada_seed, clock):
    for attempt in range(9):
        _password_attempt(client, f"wrong password {attempt}")
    clock.advance(minutes=16)
    for attempt in range(9):
        assert _password_attempt(client, f"wrong again {attempt}").status_code == 400
    sign_in_admin(client, ADA, ada_seed, clock)


def test_unknown_email_locks_like_a_real_account(client: TestClient, ada_seed):
    for attempt in range(9):
        r = _password_attempt(client, f"guess {attempt}", email="eve@example.com")
        assert r.status_code == 400 and NO_MATCH in r.text
    r = _password_attempt(client, "guess 10", email="eve@example.com")
    assert r.status_code == 429 and LOCKED in r.text


# -- sessions -----------------------------------------------------------------------------------
def test_idle_timeout_after_30_minutes(portal: Portal, client: TestClient, ada_seed, clock: Clock):
    sign_in_admin(client, ADA, ada_seed, clock)
    clock.advance(minutes=29)
    assert _signed_in(client)  # activity keeps it alive
    clock.advance(minutes=29)
    assert _signed_in(client)
    clock.advance(minutes=31)
    r = client.get("/admin/invite", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Finvite"


def test_absolute_timeout_after_12_hours(portal: Portal, client: TestClient, ada_seed, clock):
    sign_in_admin(client, ADA, ada_seed, clock)
    for i in range(11 * 3 + 2):  # busy all day, never idle for 30 minutes
        clock.advance(minutes=20)
        assert _signed_in(client), i
    clock.advance(minutes=20)  # 12 h 0 min after sign-in
    assert client.get("/admin/invite", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session_on_the_server(portal: Portal, ada_seed, clock: Clock):
    app = create_app(portal)
    with TestClient(app, base_url="http://portal.test") as browser:
        sign_in_admin(browser, ADA, ada_seed, clock)
        old_cookie = browser.cookies.get(COOKIE)
        assert old_cookie
        page = browser.get("/admin/invite")
        r = browser.post(
            "/admin/sign-out", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
        )
        assert r.status_code == 303 and r.headers["location"] == "/admin/sign-in?m=signed_out"
        assert browser.cookies.get(COOKIE) != old_cookie
        assert "You are signed out." in browser.get(r.headers["location"]).text
    with portal.db.session() as s:
        assert s.get(WebSession, hash_token(old_cookie)) is None
    # Someone who kept a copy of the old cookie gets nothing with it.
    with TestClient(app, base_url="http://portal.test", cookies={COOKIE: old_cookie}) as thief:
        assert thief.get("/admin/invite", follow_redirects=False).status_code == 303


ADMIN_PAGES = ["/admin/invite", "/admin/outbox", "/admin/outbox/1", "/admin/outbox/1/html"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_without_a_session_go_to_sign_in(client: TestClient, path: str):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/admin/sign-in?next=")


def test_admin_posts_without_a_session_go_to_sign_in(client: TestClient):
    token = csrf_of(client.get("/admin/sign-in").text)
    for path in ("/admin/invite", "/admin/outbox/retry"):
        r = client.post(path, data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/admin/sign-in")


def test_admin_root_goes_to_the_dashboard(client: TestClient):
    r = client.get("/admin", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/dashboard"


@pytest.mark.parametrize("kind", ["enroll", "admin_pending"])
def test_other_sessions_open_no_admin_page(portal: Portal, ada_seed, kind: str):
    admin_id = _admin_row(portal).id if kind == "admin_pending" else None
    raw = create_session(portal, kind=kind, admin_id=admin_id, data={"email": ADA})
    with TestClient(create_app(portal), base_url="http://portal.test", cookies={COOKIE: raw}) as c:
        for path in ADMIN_PAGES:
            assert c.get(path, follow_redirects=False).status_code == 303, path


def test_posts_without_csrf_token_are_refused(portal: Portal, client: TestClient, ada_seed, clock):
    path = create_admin(portal, email="bo@example.com", actor=CLI_ACTOR).link.removeprefix(
        "http://portal.test"
    )
    r = client.post(
        "/admin/sign-in",
        data={"email": ADA, "password": ADMIN_PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "This form has expired" in r.text
    r = client.post(path, data={"password": ADMIN_PASSWORD, "password_confirm": ADMIN_PASSWORD})
    assert r.status_code == 403
    sign_in_admin(client, ADA, ada_seed, clock)
    for target in ("/admin/invite", "/admin/sign-out", "/admin/outbox/retry"):
        r = client.post(
            target, data={"user_name": "x", "email": "x@example.com"}, follow_redirects=False
        )
        assert r.status_code == 403, target
    r = client.post(
        "/admin/invite",
        data={"csrf_token": "forged", "user_name": "x", "email": "x@example.com"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert _signed_in(client)  # still signed in: nothing happened


def test_a_newer_link_ends_a_setup_in_progress(portal: Portal, client: TestClient, clock: Clock):
    path = create_admin(portal, email=ADA, actor=CLI_ACTOR).link.removeprefix("http://portal.test")
    page = client.get(path)
    client.post(
        path,
        data={
            "csrf_token": csrf_of(page.text),
            "password": ADMIN_PASSWORD,
            "password_confirm": ADMIN_PASSWORD,
        },
    )
    page = client.get("/admin/setup/totp")
    seed = seed_of(page.text)
    create_admin(portal, email=ADA, actor=CLI_ACTOR)  # someone asked for a fresh link
    r = client.post(
        "/admin/setup/totp",
        data={
            "csrf_token": csrf_of(page.text),
            "code1": totp_at(seed, clock.step() - 1),
            "code2": totp_at(seed, clock.step()),
        },
    )
    assert r.status_code == 404 and "Open your setup link again" in r.text
    assert _admin_row(portal).totp_seed_encrypted is None

"""Sessions: a new id at every proof, sign-out and timeouts on the server, the cookie's flags.

Each test replays the cookie an attacker could hold (planted before sign-in, copied before the
exchange, kept after sign-out or after a long pause) from a second client, as another browser
would, and checks what it opens.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.config import load_settings
from app.main import create_app
from app.sandbox import Sandbox
from app.security.tokens import hash_token
from app.services.admins import create_admin
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Actor, Portal, build_portal
from app.store.models import WebSession
from tests.conftest import TEST_SECRET
from tests.helpers import ADMIN_PASSWORD, Clock, csrf_of, set_up_admin, sign_in_admin, totp_at

BASE = "http://portal.test"
COOKIE = "iam_onboard"
ADA = "ada@example.com"
HSTS = "max-age=31536000; includeSubDomains"


@pytest.fixture
def clock(portal: Portal) -> Clock:
    c = Clock()
    portal.clock = c
    return c


@pytest.fixture
def app(portal: Portal):  # type: ignore[no-untyped-def]
    return create_app(portal)


@pytest.fixture
def browser(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=BASE) as c:
        yield c


@pytest.fixture
def seed(portal: Portal, browser: TestClient, clock: Clock) -> str:
    """Ada, an admin who finished setup; her TOTP seed."""
    link = create_admin(portal, email=ADA, actor=CLI_ACTOR).link
    found = set_up_admin(browser, link.removeprefix(BASE), clock)
    browser.cookies.clear()
    return found


def replay(app, cookie: str, path: str, *, base: str = BASE, name: str = COOKIE):  # type: ignore[no-untyped-def]
    """GET `path` from another browser that holds only this cookie value."""
    with TestClient(app, base_url=base) as other:
        return other.get(path, headers={"Cookie": f"{name}={cookie}"}, follow_redirects=False)


def opens_admin_pages(app, cookie: str) -> bool:  # type: ignore[no-untyped-def]
    r = replay(app, cookie, "/admin/invite")
    if r.status_code == 303:
        assert r.headers["location"].startswith("/admin/sign-in")
        return False
    assert r.status_code == 200
    return True


def set_cookies(r: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie of the answer, by cookie name: the header as sent."""
    out = {}
    for header in r.headers.get_list("set-cookie"):
        out[header.split("=", 1)[0]] = header
    return out


def attributes(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    (morsel,) = jar.values()
    flags = {k.lower(): str(v) for k, v in morsel.items() if v}
    flags["path"] = morsel["path"]
    return flags


# -- a new id at every proof ------------------------------------------------------------------
def test_sign_in_replaces_the_id_at_the_password_and_again_at_the_code(
    app, browser: TestClient, seed: str, clock: Clock
):
    # An attacker plants an id of their choosing in the victim's browser before sign-in.
    planted = "planted-by-an-attacker-0123456789abcdef"
    browser.cookies.set(COOKIE, planted, domain="portal.test")
    page = browser.get("/admin/sign-in")
    assert COOKIE not in set_cookies(page)  # the planted id is the visitor id for now
    r = browser.post(
        "/admin/sign-in",
        data={"csrf_token": csrf_of(page.text), "email": ADA, "password": ADMIN_PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/sign-in/code"
    after_password = browser.cookies.get(COOKIE)
    assert after_password and after_password != planted
    # The planted id is not the half-signed-in session: it gets no code page.
    assert replay(app, planted, "/admin/sign-in/code").headers["location"].endswith("expired")

    clock.advance(seconds=30)
    code_page = browser.get("/admin/sign-in/code")
    r = browser.post(
        "/admin/sign-in/code",
        data={"csrf_token": csrf_of(code_page.text), "code": totp_at(seed, clock.step())},
        follow_redirects=False,
    )
    assert r.status_code == 303
    signed_in = browser.cookies.get(COOKIE)
    assert signed_in not in (planted, after_password)
    assert opens_admin_pages(app, signed_in)
    assert not opens_admin_pages(app, planted)
    assert not opens_admin_pages(app, after_password)
    assert (
        replay(app, after_password, "/admin/sign-in/code").headers["location"].endswith("expired")
    )
    # A form token issued for an old id is worth nothing with the new one.
    r = browser.post(
        "/admin/outbox/retry", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert r.status_code == 403


def test_admin_setup_replaces_the_id_at_the_password_and_ends_it_after_the_codes(
    app, portal: Portal, browser: TestClient, clock: Clock
):
    path = create_admin(portal, email=ADA, actor=CLI_ACTOR).link.removeprefix(BASE)
    page = browser.get(path)
    visitor = browser.cookies.get(COOKIE)
    r = browser.post(
        path,
        data={
            "csrf_token": csrf_of(page.text),
            "password": ADMIN_PASSWORD,
            "password_confirm": ADMIN_PASSWORD,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    pending = browser.cookies.get(COOKIE)
    assert pending != visitor
    assert replay(app, visitor, "/admin/setup/totp").status_code == 404  # the seed is not shown
    totp_page = browser.get("/admin/setup/totp")
    assert replay(app, pending, "/admin/setup/totp").status_code == 200
    seed = totp_page.text.split('id="totp-secret">', 1)[1].split("<", 1)[0].replace(" ", "")
    r = browser.post(
        "/admin/setup/totp",
        data={
            "csrf_token": csrf_of(totp_page.text),
            "code1": totp_at(seed, clock.step() - 1),
            "code2": totp_at(seed, clock.step()),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/sign-in?m=setup_done"
    assert browser.cookies.get(COOKIE) not in (visitor, pending)
    assert replay(app, pending, "/admin/setup/totp").status_code == 404
    assert not opens_admin_pages(app, pending)  # setting up is not signing in


def test_the_link_exchange_replaces_the_id(app, portal: Portal, browser: TestClient):
    link = urlsplit(
        invite_user(portal, user_name="alice", email="a@example.com", actor=Actor(ADA)).link
    ).path
    landing = browser.get(link)
    before = browser.cookies.get(COOKIE)
    assert before
    r = browser.post(link, data={"csrf_token": csrf_of(landing.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/enroll"
    after = browser.cookies.get(COOKIE)
    assert after and after != before
    assert replay(app, after, "/enroll").status_code == 200
    old = replay(app, before, "/enroll")
    assert old.status_code == 403 and "enrollment session has ended" in old.text


def test_an_admin_session_in_the_same_browser_ends_at_the_exchange(
    app, portal: Portal, browser: TestClient, seed: str, clock: Clock
):
    sign_in_admin(browser, ADA, seed, clock)
    admin_cookie = browser.cookies.get(COOKIE)
    assert opens_admin_pages(app, admin_cookie)
    link = urlsplit(
        invite_user(portal, user_name="bob", email="b@example.com", actor=Actor(ADA)).link
    ).path
    landing = browser.get(link)
    browser.post(link, data={"csrf_token": csrf_of(landing.text)}, follow_redirects=False)
    assert not opens_admin_pages(app, admin_cookie)
    assert not opens_admin_pages(app, browser.cookies.get(COOKIE))


# -- ends on the server -----------------------------------------------------------------------
def test_sign_out_ends_the_session_on_the_server(
    app, portal: Portal, browser: TestClient, seed: str, clock: Clock
):
    sign_in_admin(browser, ADA, seed, clock)
    kept = browser.cookies.get(COOKIE)  # what an attacker copied before the sign-out
    page = browser.get("/admin/invite")
    r = browser.post(
        "/admin/sign-out", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/sign-in?m=signed_out"
    assert browser.cookies.get(COOKIE) != kept
    with portal.db.session() as s:
        assert s.get(WebSession, hash_token(kept)) is None
    replayed = replay(app, kept, "/admin/dashboard")
    assert replayed.status_code == 303
    assert replayed.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Fdashboard"
    assert not opens_admin_pages(app, browser.cookies.get(COOKIE))


def test_idle_timeout_of_30_minutes_is_kept_by_the_server(
    app, portal: Portal, browser: TestClient, seed: str, clock: Clock
):
    sign_in_admin(browser, ADA, seed, clock)
    cookie = browser.cookies.get(COOKIE)
    for _ in range(3):  # active use keeps it alive well past 30 minutes in all
        clock.advance(minutes=29)
        assert opens_admin_pages(app, cookie)
    clock.advance(minutes=30)
    assert not opens_admin_pages(app, cookie)
    with portal.db.session() as s:
        assert s.get(WebSession, hash_token(cookie)) is None
    # Nothing came back to life: the browser's cookie alone was never the session.
    clock.advance(minutes=-1)
    assert not opens_admin_pages(app, cookie)


def test_absolute_timeout_of_12_hours_is_kept_by_the_server(
    app, browser: TestClient, seed: str, clock: Clock
):
    sign_in_admin(browser, ADA, seed, clock)
    cookie = browser.cookies.get(COOKIE)
    for _ in range(28):  # 11 h 40 min of use, never idle for long
        clock.advance(minutes=25)
        assert opens_admin_pages(app, cookie)
    clock.advance(minutes=19)
    assert opens_admin_pages(app, cookie)  # 11 h 59 min
    clock.advance(minutes=1)
    assert not opens_admin_pages(app, cookie)  # 12 h


def test_a_half_done_sign_in_waits_5_minutes_for_the_code(
    app, browser: TestClient, seed: str, clock: Clock
):
    page = browser.get("/admin/sign-in")
    browser.post(
        "/admin/sign-in",
        data={"csrf_token": csrf_of(page.text), "email": ADA, "password": ADMIN_PASSWORD},
        follow_redirects=False,
    )
    pending = browser.cookies.get(COOKIE)
    clock.advance(minutes=4)
    assert replay(app, pending, "/admin/sign-in/code").status_code == 200
    clock.advance(minutes=5)
    r = replay(app, pending, "/admin/sign-in/code")
    assert r.status_code == 303 and r.headers["location"] == "/admin/sign-in?m=expired"


def test_sessions_left_behind_do_not_pile_up(portal: Portal, browser: TestClient):
    # Visitors who never sign in get an id in a cookie but no row in the database.
    for _ in range(5):
        browser.cookies.clear()
        browser.get("/admin/sign-in")
    with portal.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 0


# -- the cookie -------------------------------------------------------------------------------
def test_cookie_flags_over_http(browser: TestClient, seed: str, clock: Clock):
    first = browser.get("/")
    visitor = attributes(set_cookies(first)[COOKIE])
    signed_in = attributes(set_cookies(sign_in_admin(browser, ADA, seed, clock))[COOKIE])
    page = browser.get("/admin/invite")
    lang = browser.post(
        "/language",
        data={"csrf_token": csrf_of(page.text), "language": "ko", "next": "/"},
        follow_redirects=False,
    )
    language = attributes(set_cookies(lang)["iam_onboard_lang"])
    for flags in (visitor, signed_in):
        assert flags["httponly"] and flags["samesite"] == "Lax" and flags["path"] == "/"
        assert "secure" not in flags  # plain http: a Secure cookie would never come back
        # A browser session cookie, no Domain: the server alone decides when it ends.
        assert "max-age" not in flags and "expires" not in flags and "domain" not in flags
    assert language["samesite"] == "Lax" and language["path"] == "/"
    assert language["httponly"]
    assert "strict-transport-security" not in first.headers


@pytest.fixture
def https_portal(aws: Sandbox, sqlite_url: str) -> Iterator[Portal]:
    settings = load_settings(
        secret_key=TEST_SECRET,
        database_url=sqlite_url,
        base_url="https://portal.test",
        housekeeping_interval_seconds=0,
    )
    p = build_portal(settings, endpoint=aws.url)
    p.clock = Clock()
    yield p
    p.db.dispose()


def test_over_https_the_cookie_is_host_prefixed_and_secure_and_hsts_is_sent(
    https_portal: Portal,
):
    clock = https_portal.clock
    assert isinstance(clock, Clock)
    app = create_app(https_portal)
    with TestClient(app, base_url="https://portal.test") as browser:
        first = browser.get("/")
        cookies = set_cookies(first)
        assert list(cookies) == ["__Host-iam_onboard"]
        flags = attributes(cookies["__Host-iam_onboard"])
        # __Host-: Secure, Path=/ and no Domain, or the browser drops it.
        assert flags["secure"] and flags["path"] == "/" and "domain" not in flags
        assert flags["httponly"] and flags["samesite"] == "Lax"
        for path in ("/", "/admin/sign-in", "/static/app.css", "/nothing-here"):
            assert browser.get(path).headers["strict-transport-security"] == HSTS, path

        link = create_admin(https_portal, email=ADA, actor=CLI_ACTOR).link
        assert link.startswith("https://portal.test/admin/setup/")
        seed = set_up_admin(browser, link.removeprefix("https://portal.test"), clock)
        browser.cookies.clear()
        r = sign_in_admin(browser, ADA, seed, clock)
        assert attributes(set_cookies(r)["__Host-iam_onboard"])["secure"]
        cookie = browser.cookies.get("__Host-iam_onboard")
        assert browser.get("/admin/invite", follow_redirects=False).status_code == 200
    base = "https://portal.test"
    signed_in = replay(app, cookie, "/admin/invite", base=base, name="__Host-iam_onboard")
    assert signed_in.status_code == 200
    # The unprefixed name is not read over https: a cookie planted without __Host- is ignored.
    plain = replay(app, cookie, "/admin/invite", base=base)
    assert plain.status_code == 303

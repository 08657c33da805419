"""The security headers (docs/architecture.md, "Security rules") on every GET route (walked
from the app's routes) and every error page.

Each route is fetched as the persona who sees the real page (an admin for admin pages, the new
hire for enrollment pages, an API token for the API, a stranger for the rest), with real values
in its path. Pages that show a secret are fetched after the step that shows it (the QR code, the
temporary password, a new link, the admin's TOTP setup) and must not be kept by any cache.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.sandbox import Sandbox
from app.services.admins import create_admin
from app.services.portal import CLI_ACTOR
from tests.helpers import csrf_of, totp_at
from tests.security.support import Route, app_routes, fill
from tests.security.world import BASE, World

# A mail's HTML shown on its own page is the one answer with a CSP of its own: `sandbox` and
# default-src 'none' (no script can run, no form be sent, nothing be loaded) and, for the mail's
# own inline style attributes, style-src 'unsafe-inline'. Nothing else may relax the policy.
MAIL_HTML = "/admin/outbox/{mail_id}/html"
# What each GET route answers its persona when all is well.
STATUS = {
    "/admin": 303,
    "/admin/sign-in/code": 303,  # no sign-in half done: back to the start
    "/admin/setup/totp": 404,  # no setup in progress (the real page: see below)
    "/enroll/done": 303,  # not done yet: back to the enrollment
    "/metrics": 404,  # no metrics token set in this world
    "/answer": 303,  # no form answered: to the start page
    # No identity provider set up in this world: the SSO routes are not there.
    "/admin/oidc/start": 404,
    "/admin/oidc/step-up": 404,
    "/admin/oidc/callback": 404,
}


def persona_for(route: Route) -> str:
    if route.path.startswith("/api/"):
        return "api_token"
    if route.path in ("/enroll", "/enroll/done"):
        return "new_hire"
    if route.path.startswith("/admin/") and not route.path.startswith(
        ("/admin/sign-in", "/admin/setup/")
    ):
        return "admin_a"
    return "stranger"


def real_path(route: Route, world: World) -> str:
    values: dict[str, Any] = {
        "name": "look",
        "mail_id": world.mail_id,
        "path": "app.css",
        "token": world.setup_token if route.path.startswith("/admin/") else world.link_token,
    }
    return fill(route.path, **{p: values[p] for p in route.params})


def directives(csp: str) -> dict[str, str]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = " ".join(words[1:])
    return out


def header_problems(r: httpx.Response, *, mail_html: bool = False) -> list[str]:
    """What is missing or too loose in this answer's security headers."""
    h = r.headers
    problems = []
    csp = h.get("content-security-policy", "")
    d = directives(csp)
    if not csp:
        problems.append("no Content-Security-Policy")
    # The mail's style attributes are the one exception (see MAIL_HTML).
    judged = csp.replace("style-src 'unsafe-inline'", "style-src") if mail_html else csp
    if "unsafe-inline" in judged:
        problems.append(f"'unsafe-inline' in {csp!r}")
    if "unsafe-eval" in csp:
        problems.append("'unsafe-eval' in the CSP")
    for name in ("frame-ancestors", "object-src", "base-uri"):
        if d.get(name) != "'none'":
            problems.append(f"{name} is {d.get(name)!r}")
    if mail_html:
        if "sandbox" not in d or d.get("default-src") != "'none'" or "script-src" in d:
            problems.append(f"the mail's CSP lets something run: {csp!r}")
    elif d.get("script-src") != "'self'" or d.get("default-src") != "'self'":
        problems.append(f"script-src/default-src not 'self': {csp!r}")
    if h.get("x-content-type-options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if h.get("referrer-policy") != "no-referrer":
        problems.append("no Referrer-Policy: no-referrer")
    if h.get("x-frame-options") != "DENY":
        problems.append("no X-Frame-Options: DENY")
    if not r.request.url.path.startswith("/static/") and h.get("cache-control") != "no-store":
        problems.append(f"Cache-Control is {h.get('cache-control')!r}")
    return problems


def test_every_get_route_sends_the_security_headers(world: World) -> None:
    people = world.personas()
    wrong = []
    routes = [r for r in app_routes(world.client.app) if r.method == "GET"]
    assert len(routes) >= 25
    for route in routes:
        r = world.send(people[persona_for(route)], "GET", real_path(route, world))
        if r.status_code != STATUS.get(route.path, 200):
            wrong.append(f"{route.key}: status {r.status_code}")
        problems = header_problems(r, mail_html=route.path == MAIL_HTML)
        wrong += [f"{route.key}: {p}" for p in problems]
    assert wrong == []


def test_static_files_may_be_cached_but_get_the_other_headers(world: World) -> None:
    r = world.send(world.personas()["stranger"], "GET", "/static/app.js")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=3600"
    assert header_problems(r) == []


def test_static_files_skip_the_session_layer_and_nothing_else(world: World) -> None:
    """/static/ GETs pass by the session/CSRF middleware (app/web/middleware.py): they mint no
    session cookie, still get the security headers, and only the static mount answers them, so
    nothing of the admin console is reachable that way; a POST there still meets the CSRF check."""
    stranger = world.personas()["stranger"]
    r = world.send(stranger, "GET", "/static/app.css")
    assert r.status_code == 200 and "set-cookie" not in r.headers
    assert header_problems(r) == []
    dashboard = world.send(stranger, "GET", "/static/%2E%2E/admin/dashboard")
    assert dashboard.status_code == 404 and "set-cookie" not in dashboard.headers
    assert world.send(stranger, "POST", "/static/app.css", form={}).status_code == 403


def test_error_pages_send_the_security_headers(world: World) -> None:
    people = world.personas()
    admin, stranger = people["admin_a"], people["stranger"]
    answers = {
        404: world.send(stranger, "GET", "/no/such/page"),
        403: world.send(admin, "POST", "/admin/invite", form={"user_name": "x"}),  # no token
        405: world.send(stranger, "GET", "/admin/sign-out"),
        400: world.send(admin, "GET", "/admin/dashboard?page=0"),
        401: world.send(stranger, "GET", "/api/v1/users"),
        422: world.send(people["api_token"], "POST", "/api/v1/invitations", json={"x": 1}),
    }
    assert "This form has expired" in answers[403].text

    def fail(operation: str) -> None:
        raise RuntimeError("something nobody expected")

    world.portal.on_iam_call = fail
    try:  # a client that gets the 500 page, as a browser would, instead of the exception
        with TestClient(world.client.app, base_url=BASE, raise_server_exceptions=False) as c:
            answers[500] = c.get("/admin/users/look", headers=admin.request_headers())
    finally:
        world.portal.on_iam_call = None
    assert "something nobody expected" not in answers[500].text  # no trace leaves the server
    assert "Traceback" not in answers[500].text

    for _ in range(world.portal.settings.enroll_rate_limit_per_minute + 1):
        limited = world.send(stranger, "GET", f"/enroll/{'x' * 43}")
    answers[429] = limited
    world.clock.advance(minutes=2)  # the next test's visitors start with a fresh minute

    assert {status: r.status_code for status, r in answers.items()} == {s: s for s in answers}
    wrong = {status: header_problems(r) for status, r in answers.items()}
    assert wrong == {status: [] for status in answers}


# -- pages that show a secret -------------------------------------------------------------------
def secret_pages(world: World, sandbox: Sandbox) -> dict[str, tuple[httpx.Response, str]]:
    """Each page that shows a secret, with the secret it shows."""
    people = world.personas()
    admin, hire = people["admin_a"], people["new_hire"]
    pages: dict[str, tuple[httpx.Response, str]] = {}

    scan = world.send(hire, "GET", "/enroll")
    pages["the QR code and seed"] = (scan, 'id="secret"')

    # Shown by the GET after the POST's redirect (Post/Redirect/Get).
    invite = world.submit(
        admin,
        "/admin/invite",
        {"csrf_token": admin.csrf, "user_name": "nina", "email": "nina@example.com"},
    )
    pages["a new invite's link"] = (invite, 'id="invite-link"')
    resend = world.submit(admin, "/admin/users/look/resend", {"csrf_token": admin.csrf})
    pages["a resent link"] = (resend, 'id="enroll-link"')
    reset = world.submit(
        admin,
        "/admin/users/reset-a/reset-mfa",
        {"csrf_token": admin.csrf, "email": "", "code": world.code("admin_a")},
    )
    pages["the link after an MFA reset"] = (reset, 'id="enroll-link"')
    api = world.send(
        people["api_token"],
        "POST",
        "/api/v1/invitations",
        json={"user_name": "ivan", "email": "ivan@example.com"},
    )
    pages["the API's new link"] = (api, '"link":')

    # An admin half way through setup: the TOTP page with the portal's seed.
    link = create_admin(world.portal, email="erin@example.com", actor=CLI_ACTOR).link
    world.client.cookies.clear()
    form_page = world.client.get(link.removeprefix(BASE))
    password = "a long enough passphrase"
    world.client.post(
        link.removeprefix(BASE),
        data={
            "csrf_token": csrf_of(form_page.text),
            "password": password,
            "password_confirm": password,
        },
        follow_redirects=False,
    )
    pages["the admin's TOTP setup"] = (world.client.get("/admin/setup/totp"), 'id="totp-secret"')
    world.client.cookies.clear()

    # The temporary password: a whole enrollment, codes from the seed on the page, checked by
    # the portal and the sandbox on the world's clock.
    seed = scan.text.split('id="secret"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    seed = seed.replace(" ", "").strip()
    sandbox.set_clock(world.clock)
    try:
        step = world.clock.step()
        verify = world.send(
            hire,
            "POST",
            "/enroll/verify",
            form={
                "csrf_token": hire.csrf,
                "code1": totp_at(seed, step - 1),
                "code2": totp_at(seed, step),
            },
        )
        assert verify.status_code == 303, verify.text
        pages["the temporary password"] = (
            world.send(hire, "GET", "/enroll/done"),
            'id="temp-password"',
        )
    finally:
        sandbox.set_clock(None)
    return pages


def test_every_page_that_shows_a_secret_is_no_store(world: World, sandbox: Sandbox) -> None:
    pages = secret_pages(world, sandbox)
    assert len(pages) == 7
    for what, (r, marker) in pages.items():
        assert r.status_code in (200, 201), (what, r.status_code, r.text[:300])
        assert marker in r.text, what  # the secret is on it: this is the page meant
        assert r.headers["cache-control"] == "no-store", what
        assert header_problems(r) == [], what


@pytest.mark.parametrize("path", ["/admin/dashboard.csv", "/admin/audit.csv", "/admin/audit.jsonl"])
def test_downloads_of_personal_data_are_no_store_too(world: World, path: str) -> None:
    r = world.send(world.personas()["admin_a"], "GET", path)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert r.headers["cache-control"] == "no-store"

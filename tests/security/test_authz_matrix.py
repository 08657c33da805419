"""Who may do what: five personas against every route the app has.

The personas: admin A and admin B (both signed in; there is no per-admin ownership, so B may act
on users A invited), a new hire in the middle of an enrollment, a stranger (a browser with a
visitor cookie and no session) and an HR system with an API token of the default scopes
(`users:read`, `invitations:write`; no cookie at all). TABLE says
what each of them gets from each route. A route the app has that is not in the table fails the
test: a new route must be thought through here before it ships.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.store.models import AuditEvent
from tests.helpers import csrf_of
from tests.security.support import app_routes
from tests.security.world import ADA, BASE, BOB, PERSONAS, Persona, World


@dataclass(frozen=True)
class Outcome:
    status: int
    location: str | None = None  # a redirect's target starts with this
    text: str | None = None  # the answer holds this ({me}: the persona's own email)

    def __str__(self) -> str:
        return f"{self.status} {self.location or ''}{self.text or ''}".strip()


def to(location: str) -> Outcome:
    return Outcome(303, location=location)


OK = Outcome(200)
CREATED = Outcome(201)
BAD = Outcome(400)  # the handler ran and refused the values: the door itself was open
GONE = Outcome(404)
ADMIN = Outcome(200, text="Signed in as {me}")  # an admin page, as that very admin
SIGN_IN = to("/admin/sign-in?next=")
CSRF = Outcome(403, text="This form has expired")  # no cookie, so no valid CSRF token
NO_ENROLLMENT = Outcome(403, text="Your enrollment session has ended")
NO_TOKEN = Outcome(401, text="A valid API token is required")
EXPIRED = to("/admin/sign-in?m=expired")
NE = NO_ENROLLMENT


def scope(name: str) -> Outcome:
    """The token is good but lacks the scope the route needs: 403 naming it."""
    return Outcome(403, text=f"lacks the scope {name}")


# fmt: off
TABLE: dict[str, tuple[Outcome, Outcome, Outcome, Outcome, Outcome]] = {
    # route                                 admin A   admin B   new hire       stranger  API token
    "GET /":                               (OK,       OK,       OK,            OK,       OK),
    "GET /openapi.json":                   (OK,       OK,       OK,            OK,       OK),
    "GET /static/{path}":                  (OK,       OK,       OK,            OK,       OK),
    "GET /favicon.ico":                    (OK,       OK,       OK,            OK,       OK),
    "GET /healthz":                        (OK,       OK,       OK,            OK,       OK),
    "GET /readyz":                         (OK,       OK,       OK,            OK,       OK),
    # No IAM_ONBOARD_METRICS_TOKEN in this world: no page for anyone (an API token is not it;
    # test_metrics.py covers the token).
    "GET /metrics":                        (GONE,) * 5,
    "POST /language":                      (to("/admin/audit"),) * 4 + (CSRF,),
    # The answer to a form, once, for the session it was kept in; else the start page.
    "GET /answer":                         (to("/admin/dashboard"),) * 2
                                           + (to("/enroll"), to("/"), to("/")),
    # The enrollment link is the credential: whoever holds it sees the landing page and may
    # exchange it; after that only the session the exchange started opens the enrollment.
    "GET /enroll/{token}":                 (OK,       OK,       OK,            OK,       OK),
    "POST /enroll/{token}":                (to("/enroll"),) * 4 + (CSRF,),
    "GET /enroll":                         (NE,       NE,       OK,            NE,       NE),
    "POST /enroll/verify":                 (NE,       NE,       BAD,           NE,       CSRF),
    "POST /enroll/finish":                 (NE,       NE,       to("/enroll"), NE,       CSRF),
    "POST /enroll/restart":                (NE,       NE,       to("/enroll"), NE,       CSRF),
    "GET /enroll/done":                    (NE,       NE,       to("/enroll"), NE,       NE),
    # Admin setup: the link is the credential too; its TOTP step belongs to the session that
    # the password step started, so nobody else (another admin included) sees it.
    "GET /admin/setup/{token}":            (OK,       OK,       OK,            OK,       OK),
    "POST /admin/setup/{token}":           (BAD,      BAD,      BAD,           BAD,      CSRF),
    "GET /admin/setup/totp":               (GONE,     GONE,     GONE,          GONE,     GONE),
    "POST /admin/setup/totp":              (GONE,     GONE,     GONE,          GONE,     CSRF),
    "GET /admin":                          (to("/admin/dashboard"),) * 5,
    "GET /admin/sign-in":                  (to("/admin/dashboard"),) * 2 + (OK, OK, OK),
    "POST /admin/sign-in":                 (BAD,      BAD,      BAD,           BAD,      CSRF),
    # Sign-in with an identity provider: without IAM_ONBOARD_OIDC_ISSUER (this world) its doors
    # do not exist; step-up at the provider is an admin's only (tests/integration/test_admin_sso).
    "GET /admin/oidc/start":               (GONE,) * 5,
    "GET /admin/oidc/step-up":             (GONE,     GONE,     SIGN_IN,       SIGN_IN,  SIGN_IN),
    "GET /admin/oidc/callback":            (GONE,) * 5,
    "GET /admin/sign-in/code":             (EXPIRED,) * 5,
    "POST /admin/sign-in/code":            (EXPIRED,) * 4 + (CSRF,),
    "POST /admin/sign-out":                (to("/admin/sign-in?m=signed_out"),) * 4 + (CSRF,),
    "GET /admin/dashboard":                (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  SIGN_IN),
    "GET /admin/dashboard.csv":            (OK,       OK,       SIGN_IN,       SIGN_IN,  SIGN_IN),
    "POST /admin/dashboard/refresh":       (to("/admin/dashboard?done=refreshed"),) * 2
                                           + (SIGN_IN, SIGN_IN, CSRF),
    "GET /admin/invite":                   (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  SIGN_IN),
    "POST /admin/invite":                  (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  CSRF),
    "GET /admin/outbox":                   (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  SIGN_IN),
    "POST /admin/outbox/retry":            (to("/admin/outbox?sent=0"),) * 2
                                           + (SIGN_IN, SIGN_IN, CSRF),
    "GET /admin/outbox/{mail_id}":         (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  SIGN_IN),
    "GET /admin/outbox/{mail_id}/html":    (OK,       OK,       SIGN_IN,       SIGN_IN,  SIGN_IN),
    "GET /admin/users/{name}":             (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  SIGN_IN),
    "POST /admin/users/{name}/resend":     (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  CSRF),
    "POST /admin/users/{name}/revoke":     (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  CSRF),
    "GET /admin/users/{name}/reset-mfa":   (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  SIGN_IN),
    "POST /admin/users/{name}/reset-mfa":  (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  CSRF),
    "GET /admin/users/{name}/send-link":   (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  SIGN_IN),
    "POST /admin/users/{name}/send-link":  (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  CSRF),
    "POST /admin/users/{name}/email":      (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  CSRF),
    "GET /admin/users/{name}/offboard":    (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  SIGN_IN),
    "POST /admin/users/{name}/offboard":   (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  CSRF),
    "GET /admin/audit":                    (ADMIN,    ADMIN,    SIGN_IN,       SIGN_IN,  SIGN_IN),
    "GET /admin/audit.csv":                (OK,       OK,       SIGN_IN,       SIGN_IN,  SIGN_IN),
    "GET /admin/audit.jsonl":              (OK,       OK,       SIGN_IN,       SIGN_IN,  SIGN_IN),
    # The API knows only its bearer tokens: an admin's cookie opens none of it.
    "POST /api/v1/invitations":            (NO_TOKEN, NO_TOKEN, NO_TOKEN,      NO_TOKEN, CREATED),
    "GET /api/v1/users":                   (NO_TOKEN, NO_TOKEN, NO_TOKEN,      NO_TOKEN, OK),
    "GET /api/v1/users/{name}":            (NO_TOKEN, NO_TOKEN, NO_TOKEN,      NO_TOKEN, OK),
    # What hands someone a way into an existing user needs a scope asked for by name.
    "POST /api/v1/users/{name}/resend":    (NO_TOKEN,) * 4 + (scope("users:lifecycle"),),
    "POST /api/v1/users/{name}/revoke":    (NO_TOKEN,) * 4 + (scope("users:lifecycle"),),
    "POST /api/v1/users/{name}/reset-mfa": (NO_TOKEN,) * 4 + (scope("users:lifecycle"),),
    "POST /api/v1/users/{name}/send-link": (NO_TOKEN,) * 4 + (scope("users:adopt"),),
    "DELETE /api/v1/users/{name}":         (NO_TOKEN,) * 4 + (scope("users:delete"),),
}
# fmt: on
EMAILS = {"admin_a": ADA, "admin_b": BOB}

Request = tuple[str, dict[str, Any] | None, Any]


def request_for(key: str, w: World, p: Persona) -> Request:
    """The path, form and JSON body `p` sends to the route `key`."""
    admin = p.name in ("admin_a", "admin_b")
    suffix = {"admin_a": "a", "admin_b": "b", "api_token": "api"}.get(p.name, "x")

    def code() -> str:
        return w.code(p.name) if admin else "000000"

    def target(kind: str) -> str:
        return w.target(kind, p.name)

    def form(**values: Any) -> dict[str, Any]:
        return {"csrf_token": p.csrf, **values}

    routes: dict[str, Any] = {
        "GET /openapi.json": lambda: ("/openapi.json", None, None),
        "GET /static/{path}": lambda: ("/static/app.css", None, None),
        "GET /favicon.ico": lambda: ("/favicon.ico", None, None),
        "GET /": lambda: ("/", None, None),
        "GET /answer": lambda: ("/answer", None, None),
        "POST /language": lambda: ("/language", form(language="ko", next="/admin/audit"), None),
        "GET /enroll": lambda: ("/enroll", None, None),
        "POST /enroll/verify": lambda: ("/enroll/verify", form(code1="", code2=""), None),
        "POST /enroll/finish": lambda: ("/enroll/finish", form(), None),
        "POST /enroll/restart": lambda: ("/enroll/restart", form(), None),
        "GET /enroll/done": lambda: ("/enroll/done", None, None),
        "GET /enroll/{token}": lambda: (f"/enroll/{w.link_token}", None, None),
        "POST /enroll/{token}": lambda: (f"/enroll/{w.link_token}", form(), None),
        "GET /admin": lambda: ("/admin", None, None),
        "GET /admin/setup/totp": lambda: ("/admin/setup/totp", None, None),
        "POST /admin/setup/totp": lambda: ("/admin/setup/totp", form(code1="1", code2="2"), None),
        "GET /admin/setup/{token}": lambda: (f"/admin/setup/{w.setup_token}", None, None),
        "POST /admin/setup/{token}": lambda: (
            f"/admin/setup/{w.setup_token}",
            form(password="a long enough passphrase", password_confirm="a different one"),
            None,
        ),
        "GET /admin/sign-in": lambda: ("/admin/sign-in", None, None),
        "POST /admin/sign-in": lambda: (
            "/admin/sign-in",
            form(email="nobody@example.com", password="not the password"),
            None,
        ),
        "GET /admin/oidc/start": lambda: ("/admin/oidc/start", None, None),
        "GET /admin/oidc/step-up": lambda: ("/admin/oidc/step-up?next=/admin", None, None),
        "GET /admin/oidc/callback": lambda: ("/admin/oidc/callback?state=x&code=y", None, None),
        "GET /admin/sign-in/code": lambda: ("/admin/sign-in/code", None, None),
        "POST /admin/sign-in/code": lambda: ("/admin/sign-in/code", form(code="123456"), None),
        "POST /admin/sign-out": lambda: ("/admin/sign-out", form(), None),
        "GET /admin/invite": lambda: ("/admin/invite", None, None),
        "POST /admin/invite": lambda: (
            "/admin/invite",
            form(user_name=f"new-{suffix}", email=f"new-{suffix}@example.com"),
            None,
        ),
        "GET /admin/outbox": lambda: ("/admin/outbox", None, None),
        "POST /admin/outbox/retry": lambda: ("/admin/outbox/retry", form(), None),
        "GET /admin/outbox/{mail_id}": lambda: (f"/admin/outbox/{w.mail_id}", None, None),
        "GET /admin/outbox/{mail_id}/html": lambda: (f"/admin/outbox/{w.mail_id}/html", None, None),
        "GET /admin/dashboard": lambda: ("/admin/dashboard", None, None),
        "POST /admin/dashboard/refresh": lambda: ("/admin/dashboard/refresh", form(), None),
        "GET /admin/dashboard.csv": lambda: ("/admin/dashboard.csv", None, None),
        "GET /admin/users/{name}": lambda: ("/admin/users/look", None, None),
        "POST /admin/users/{name}/resend": lambda: (
            f"/admin/users/{target('resend')}/resend",
            form(),
            None,
        ),
        "POST /admin/users/{name}/revoke": lambda: (
            f"/admin/users/{target('revoke')}/revoke",
            form(),
            None,
        ),
        "GET /admin/users/{name}/reset-mfa": lambda: ("/admin/users/look/reset-mfa", None, None),
        "POST /admin/users/{name}/reset-mfa": lambda: (
            f"/admin/users/{target('reset')}/reset-mfa",
            form(email="", code=code()),
            None,
        ),
        "GET /admin/users/{name}/send-link": lambda: (
            f"/admin/users/{target('exist')}/send-link",
            None,
            None,
        ),
        "POST /admin/users/{name}/send-link": lambda: (
            f"/admin/users/{target('exist')}/send-link",
            form(email=f"{target('exist')}@example.com", enforce="now", code=code()),
            None,
        ),
        "POST /admin/users/{name}/email": lambda: (
            f"/admin/users/{target('email')}/email",
            form(email=f"{target('email')}.new@example.com", email_code=code()),
            None,
        ),
        "GET /admin/users/{name}/offboard": lambda: ("/admin/users/look/offboard", None, None),
        "POST /admin/users/{name}/offboard": lambda: (
            f"/admin/users/{target('off')}/offboard",
            form(confirm_name=target("off"), code=code()),
            None,
        ),
        "GET /admin/audit": lambda: ("/admin/audit", None, None),
        "GET /admin/audit.csv": lambda: ("/admin/audit.csv", None, None),
        "GET /admin/audit.jsonl": lambda: ("/admin/audit.jsonl", None, None),
        "POST /api/v1/invitations": lambda: (
            "/api/v1/invitations",
            None,
            {"user_name": f"api-new-{suffix}", "email": f"api-new-{suffix}@example.com"},
        ),
        "GET /api/v1/users": lambda: ("/api/v1/users", None, None),
        "GET /api/v1/users/{name}": lambda: ("/api/v1/users/look", None, None),
        "POST /api/v1/users/{name}/resend": lambda: (
            f"/api/v1/users/{target('resend')}/resend",
            None,
            None,
        ),
        "POST /api/v1/users/{name}/revoke": lambda: (
            f"/api/v1/users/{target('revoke')}/revoke",
            None,
            {},
        ),
        "POST /api/v1/users/{name}/reset-mfa": lambda: (
            f"/api/v1/users/{target('reset')}/reset-mfa",
            None,
            {},
        ),
        "POST /api/v1/users/{name}/send-link": lambda: (
            f"/api/v1/users/{target('exist')}/send-link",
            None,
            {"email": f"{target('exist')}@example.com"},
        ),
        "DELETE /api/v1/users/{name}": lambda: (f"/api/v1/users/{target('off')}", None, None),
        "GET /healthz": lambda: ("/healthz", None, None),
        "GET /readyz": lambda: ("/readyz", None, None),
        "GET /metrics": lambda: ("/metrics", None, None),
    }
    return routes[key]()


def check(outcome: Outcome, r: Any, persona: str) -> str | None:
    """None when the answer is the outcome expected, else what differs."""
    problems = []
    if r.status_code != outcome.status:
        problems.append(f"status {r.status_code}")
    if outcome.location is not None and not r.headers.get("location", "").startswith(
        outcome.location
    ):
        problems.append(f"location {r.headers.get('location')!r}")
    if outcome.text is not None:
        text = outcome.text.format(me=EMAILS.get(persona, ""))
        if text not in r.text:
            problems.append(f"no {text!r}")
    return ", ".join(problems) or None


def test_every_route_is_in_the_table(world: World) -> None:
    routes = {route.key for route in app_routes(world.client.app)}
    assert sorted(routes - TABLE.keys()) == [], "routes missing from TABLE: decide who may use them"
    assert sorted(TABLE.keys() - routes) == [], "TABLE lists routes the app no longer has"


@pytest.mark.parametrize("key", list(TABLE))
def test_route_answers_each_persona_as_the_table_says(world: World, key: str) -> None:
    method = key.split(" ", 1)[0]
    people = world.personas()
    wrong = []
    for name, outcome in zip(PERSONAS, TABLE[key], strict=True):
        path, form, body = request_for(key, world, people[name])
        r = world.send(people[name], method, path, form=form, json=body)
        if method == "POST" and outcome.location is None and r.status_code == 303:
            # Post/Redirect/Get: what the person sees is the page the redirect leads to.
            r = world.send(people[name], "GET", r.headers["location"], form=None, json=None)
        problem = check(outcome, r, name)
        if problem:
            wrong.append(f"{name}: expected {outcome}, got {problem}")
    assert wrong == []


# -- what the table cannot show --------------------------------------------------------------
def test_admin_b_acts_on_a_user_admin_a_invited_and_the_audit_log_names_b(world: World) -> None:
    people = world.personas()
    name = "resend-b"  # invited by admin A
    r = world.send(
        people["admin_b"],
        "POST",
        f"/admin/users/{name}/resend",
        form={"csrf_token": people["admin_b"].csrf},
    )
    assert r.status_code == 303 and r.headers["location"] == "/answer"
    r = world.send(people["admin_b"], "GET", "/answer")
    assert r.status_code == 200 and "/enroll/" in r.text
    with world.portal.db.session() as s:
        actors = set(
            s.scalars(
                select(AuditEvent.actor).where(
                    AuditEvent.target_user == name, AuditEvent.action == "resend"
                )
            )
        )
    assert BOB in actors


def test_no_admin_sees_another_admins_totp_setup(world: World) -> None:
    from app.services.admins import create_admin
    from app.services.portal import CLI_ACTOR

    link = create_admin(world.portal, email="dora@example.com", actor=CLI_ACTOR).link
    path = link.removeprefix(BASE)
    world.client.cookies.clear()
    page = world.client.get(path)
    password = "a long enough passphrase"
    r = world.client.post(
        path,
        data={"csrf_token": csrf_of(page.text), "password": password, "password_confirm": password},
        follow_redirects=False,
    )
    assert r.status_code == 303
    dora = world.client.get("/admin/setup/totp")
    assert dora.status_code == 200
    seed = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', dora.text)
    assert seed, "Dora's own setup page shows her seed"
    people = world.personas()
    for name in ("admin_a", "admin_b", "new_hire", "stranger"):
        other = world.send(people[name], "GET", "/admin/setup/totp")
        assert other.status_code == 404, name
        assert seed.group(1) not in other.text and "dora@example.com" not in other.text


def test_a_new_hire_sees_only_their_own_enrollment(world: World) -> None:
    from app.services.invitations import invite_user
    from app.services.portal import Actor

    link = invite_user(
        world.portal, user_name="second", email="second@example.com", actor=Actor(ADA)
    ).link.removeprefix(BASE)
    world.client.cookies.clear()
    landing = world.client.get(link)
    world.client.post(link, data={"csrf_token": csrf_of(landing.text)}, follow_redirects=False)
    second = world.client.get("/enroll")
    assert second.status_code == 200 and "IAM user second" in second.text
    first = world.send(world.personas()["new_hire"], "GET", "/enroll")
    assert first.status_code == 200 and f"IAM user {world.hire_user}" in first.text
    assert "IAM user second" not in first.text
    seeds = [
        re.search(r'id="secret"[^>]*>([^<]+)<', page.text).group(1)  # type: ignore[union-attr]
        for page in (first, second)
    ]
    assert seeds[0] != seeds[1]

"""A portal with something behind every route, and the five personas who knock on its doors.

Built once per test module (building it takes seconds: admins set up through the pages, users
invited in the sandbox); each test then takes fresh sessions for its personas from `personas()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.sandbox import Sandbox
from app.security.csrf import csrf_token_for
from app.security.tokens import new_token
from app.services.admins import create_admin
from app.services.api_tokens import create_api_token
from app.services.bootstrap import bootstrap
from app.services.invitations import invite_user
from app.services.notifications import send_invite_mail
from app.services.portal import CLI_ACTOR, Actor, Portal
from app.services.sessions import create_session
from app.store.models import Admin, Enrollment, Invitation
from tests.conftest import make_portal
from tests.helpers import Clock, csrf_of, set_up_admin, totp_at

BASE = "http://portal.test"
COOKIE = "iam_onboard"
ADA = "ada@example.com"
BOB = "bob@example.com"
PERSONAS = ("admin_a", "admin_b", "new_hire", "stranger", "api_token")
# The users each admin acts on: admin B acts on users admin A invited (no per-admin ownership).
TARGET_KINDS = ("resend", "revoke", "reset", "off", "exist", "email")


@dataclass
class Persona:
    name: str
    cookie: str | None  # the session cookie's value; None: no cookie at all
    csrf: str
    headers: dict[str, str] = field(default_factory=dict)

    def request_headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(self.headers)
        if self.cookie is not None:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        headers.update(extra or {})
        return headers


@dataclass
class World:
    portal: Portal
    client: TestClient
    clock: Clock
    seeds: dict[str, str]  # admin persona -> TOTP seed
    admin_ids: dict[str, str]
    hire_enrollment: str
    hire_user: str
    link_token: str  # a pending invitation's link nobody has used
    setup_token: str  # a pending admin's setup link
    mail_id: int
    api_token: str
    targets: dict[str, str] = field(default_factory=dict)  # "resend-a" -> user name

    def target(self, kind: str, persona: str) -> str:
        """The user this persona acts on for `kind`; non-admins knock on admin A's."""
        suffix = {"admin_b": "b", "api_token": "api"}.get(persona, "a")
        return f"{kind}-{suffix}"

    def code(self, persona: str) -> str:
        """A fresh step-up code of this admin (a new 30-second step each time)."""
        self.clock.advance(seconds=30)
        return totp_at(self.seeds[persona], self.clock.step())

    def personas(self) -> dict[str, Persona]:
        """New sessions for everyone, as each would hold them in a browser (or an HR system)."""
        secret = self.portal.settings.secret_key

        def session(**values: Any) -> str:
            return create_session(self.portal, **values)

        cookies = {
            "admin_a": session(
                kind="admin", admin_id=self.admin_ids["admin_a"], data={"email": ADA}
            ),
            "admin_b": session(
                kind="admin", admin_id=self.admin_ids["admin_b"], data={"email": BOB}
            ),
            "new_hire": session(kind="enroll", enrollment_id=self.hire_enrollment),
            "stranger": new_token(),  # a visitor's id: it binds CSRF, no session behind it
        }
        out = {
            name: Persona(name, raw, csrf_token_for(secret=secret, session_id=raw))
            for name, raw in cookies.items()
        }
        out["api_token"] = Persona(
            "api_token", None, "", {"Authorization": f"Bearer {self.api_token}"}
        )
        return out

    def send(
        self,
        persona: Persona,
        method: str,
        path: str,
        *,
        form: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request as this persona, with nothing but its own cookie."""
        self.client.cookies.clear()
        kwargs: dict[str, Any] = {"headers": persona.request_headers(headers)}
        if form is not None:
            kwargs["data"] = form
        if json is not None:
            kwargs["json"] = json
        return self.client.request(method, path, follow_redirects=False, **kwargs)

    def submit(self, persona: Persona, path: str, form: dict[str, Any]) -> httpx.Response:
        """A form as this persona, answered as a browser shows it: the POST's 303, then the
        page it leads to (Post/Redirect/Get, app/web/prg.py)."""
        r = self.send(persona, "POST", path, form=form)
        assert r.status_code == 303, (r.status_code, r.text[:300])
        return self.send(persona, "GET", r.headers["location"])


def _token_of(link: str) -> str:
    return urlsplit(link).path.rsplit("/", 1)[1]


@contextmanager
def build_world(sandbox: Sandbox, database_url: str) -> Iterator[World]:
    sandbox.reset()
    portal = make_portal(sandbox, database_url, assignable_groups=["Developers", "ReadOnly"])
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    iam = portal.iam()
    for group in ("Developers", "ReadOnly"):
        iam.create_group(group)
    clock = Clock()
    portal.clock = clock
    with TestClient(create_app(portal), base_url=BASE) as client:
        seeds, admin_ids = {}, {}
        for persona, email in (("admin_a", ADA), ("admin_b", BOB)):
            link = create_admin(portal, email=email, actor=CLI_ACTOR).link
            seeds[persona] = set_up_admin(client, link.removeprefix(BASE), clock)
            client.cookies.clear()
            with portal.db.session() as s:
                admin_ids[persona] = s.scalars(select(Admin.id).where(Admin.email == email)).one()
        setup_token = _token_of(
            create_admin(portal, email="carl@example.com", actor=CLI_ACTOR).link
        )

        ada = Actor(ADA)
        targets = {}
        for kind in TARGET_KINDS:
            for suffix in ("a", "b", "api"):
                name = f"{kind}-{suffix}"
                if kind == "exist":  # made in IAM by someone else: the portal never invited it
                    iam.create_user(name, tags={})
                else:
                    invite_user(portal, user_name=name, email=f"{name}@example.com", actor=ada)
                targets[name] = name
        look = invite_user(portal, user_name="look", email="look@example.com", actor=ada)
        mail_id = send_invite_mail(portal, result=look).mail_id
        link_token = _token_of(
            invite_user(portal, user_name="linkholder", email="l@example.com", actor=ada).link
        )

        # The new hire: a real exchange of a link for an enrollment, through the pages.
        hire_link = urlsplit(
            invite_user(portal, user_name="hire", email="hire@example.com", actor=ada).link
        ).path
        landing = client.get(hire_link)
        started = client.post(
            hire_link, data={"csrf_token": csrf_of(landing.text)}, follow_redirects=False
        )
        assert started.status_code == 303, started.text
        client.cookies.clear()
        with portal.db.session() as s:
            hire_enrollment = s.scalars(
                select(Enrollment.id)
                .join(Invitation, Enrollment.invitation_id == Invitation.id)
                .where(Invitation.user_name == "hire")
            ).one()

        yield World(
            portal=portal,
            client=client,
            clock=clock,
            seeds=seeds,
            admin_ids=admin_ids,
            hire_enrollment=hire_enrollment,
            hire_user="hire",
            link_token=link_token,
            setup_token=setup_token,
            mail_id=mail_id,
            api_token=create_api_token(portal, name="hr-system"),
            targets=targets,
        )
    portal.db.dispose()

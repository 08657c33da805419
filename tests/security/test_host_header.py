"""A forged Host (or X-Forwarded-Host, Forwarded) header cannot change a link the portal makes.

A real uvicorn serves the app, with 127.0.0.1 as a trusted proxy (IAM_ONBOARD_TRUSTED_PROXIES),
so X-Forwarded-* take effect; every request of the admin and of the HR system carries
the forged headers. Each link (invite page, its mail, the API, a resend, an MFA reset, an admin
setup link) must start with the configured base URL, and no page or redirect may echo the
forged host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from app.services.admins import create_admin
from app.services.api_tokens import create_api_token
from app.services.outbox import read_mail
from app.services.portal import CLI_ACTOR, Portal
from app.store.models import OutboxMail
from tests.helpers import (
    Clock,
    answer_of,
    csrf_of,
    serve_in_thread,
    set_up_admin,
    sign_in_admin,
    totp_at,
)

EVIL = "evil.example"
FORGED = {
    "Host": EVIL,
    "X-Forwarded-Host": EVIL,
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/phish",
    "X-Original-URL": "http://evil.example/",
    "Forwarded": f"host={EVIL};proto=https",
}
BASE = "http://portal.test"  # the configured base URL (tests/conftest.py)
LINK = re.compile(r"https?://[^\s\"'<>]+/(?:enroll|admin/setup)/[A-Za-z0-9_-]{20,}")


@pytest.fixture
def server(portal: Portal) -> Iterator[str]:
    # The worst case: the loopback peer is a trusted proxy, so X-Forwarded-* take effect.
    portal.settings.trusted_proxies = ["127.0.0.1"]
    with serve_in_thread(portal) as url:
        yield url


class Forged(httpx.Client):
    """A client whose every request carries the forged headers; it keeps every answer."""

    def __init__(self, url: str):
        super().__init__(base_url=url, headers=FORGED)
        self.answers: list[httpx.Response] = []

    def send(self, request: httpx.Request, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def, override]
        response = super().send(request, **kwargs)
        response.read()
        self.answers.append(response)
        return response


def links_in(text: str) -> list[str]:
    return LINK.findall(text.replace("&amp;", "&"))


def test_no_link_follows_a_forged_host(portal: Portal, server: str) -> None:
    clock = Clock()
    portal.clock = clock
    with Forged(server) as browser:
        setup = create_admin(portal, email="ada@example.com", actor=CLI_ACTOR).link
        assert setup.startswith(BASE + "/admin/setup/")
        seed = set_up_admin(browser, setup.removeprefix(BASE), clock)
        browser.cookies.clear()
        sign_in_admin(browser, "ada@example.com", seed, clock)

        page = browser.get("/admin/invite")
        # Each form answers 303 (Post/Redirect/Get); its page, with the link, is the GET after.
        invited = browser.post(
            "/admin/invite",
            data={"csrf_token": csrf_of(page.text), "user_name": "alice", "email": "a@example.com"},
        )
        invited = answer_of(browser, invited)
        assert invited.status_code == 200, invited.text
        resent = browser.post("/admin/users/alice/resend", data={"csrf_token": csrf_of(page.text)})
        resent = answer_of(browser, resent)
        assert resent.status_code == 200, resent.text
        clock.advance(seconds=30)
        reset = browser.post(
            "/admin/users/alice/reset-mfa",
            data={
                "csrf_token": csrf_of(page.text),
                "email": "",
                "code": totp_at(seed, clock.step()),
            },
        )
        reset = answer_of(browser, reset)
        assert reset.status_code == 200, reset.text
        for path in ("/admin/dashboard", "/admin/users/alice", "/admin/outbox", "/admin/audit"):
            assert browser.get(path).status_code == 200
        # Redirects too: the sign-in page after signing out, an admin page without a session.
        browser.post("/admin/sign-out", data={"csrf_token": csrf_of(page.text)})
        browser.get("/admin/dashboard")
        web_answers = list(browser.answers)

    with Forged(server) as hr:
        token = create_api_token(portal, name="hr", scopes=["invitations:write", "users:lifecycle"])
        hr.headers["Authorization"] = f"Bearer {token}"
        api_invite = hr.post("/api/v1/invitations", json={"user_name": "bob", "email": "b@x.io"})
        assert api_invite.status_code == 201, api_invite.text
        api_resend = hr.post("/api/v1/users/bob/resend")
        api_reset = hr.post("/api/v1/users/bob/reset-mfa", json={})
        assert api_resend.status_code == 200 and api_reset.status_code == 200
        api_links = [r.json()["link"] for r in (api_invite, api_resend, api_reset)]
        api_answers = list(hr.answers)

    with portal.db.session() as s:
        rows = [read_mail(portal, m) for m in s.query(OutboxMail).all()]
    mails = [f"{m.text_body}\n{m.html_body or ''}" for m in rows]

    shown = [links_in(r.text) for r in (invited, resent, reset)]
    assert all(len(found) >= 1 for found in shown), shown
    every_link = [link for found in shown for link in found] + api_links
    every_link += [link for mail in mails for link in links_in(mail)]
    assert len(every_link) >= 8
    assert all(link.startswith(BASE + "/enroll/") for link in every_link), every_link

    for r in web_answers + api_answers:
        assert EVIL not in r.text and "phish" not in r.text, r.request.url
        assert EVIL not in r.headers.get("location", ""), r.request.url
        location = r.headers.get("location", "")
        assert not location or location.startswith("/"), location  # redirects stay relative
    assert all(EVIL not in mail for mail in mails)

"""Post/Redirect/Get (app/web/prg.py): every form's answer is a 303, its page comes from the GET
after it, once, to the session that sent the form; what it holds is sealed at rest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.services.portal import Portal
from app.store.models import WebSession
from tests.helpers import answer_of, csrf_of, signed_in_admin

ADA = "ada@example.com"


@pytest.fixture
def ada(portal: Portal) -> Iterator[TestClient]:
    with signed_in_admin(portal, ADA) as client:
        yield client


def _db_bytes(portal: Portal) -> bytes:
    db_file = Path(portal.settings.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))


def test_an_invites_link_is_shown_once_after_the_redirect_and_sealed_until_then(
    portal: Portal, ada: TestClient
):
    page = ada.get("/admin/invite")
    form = {"csrf_token": csrf_of(page.text), "user_name": "grace", "email": "g@example.com"}
    posted = ada.post("/admin/invite", data=form, follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"] == "/answer"
    assert "/enroll/" not in posted.text and "/enroll/" not in posted.headers["location"]
    assert all("enroll" not in c for c in posted.headers.get_list("set-cookie"))
    # Until it is shown, the page waits in the session, sealed: the link is nowhere in clear.
    with portal.db.session() as s:
        kept = [
            row.data["answer"] for row in s.scalars(select(WebSession)) if row.data.get("answer")
        ]
    assert len(kept) == 1 and kept[0].startswith("v1.")

    shown = ada.get("/answer", follow_redirects=False)
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    link = re.search(r'id="invite-link">(http://portal\.test/enroll/[^<]+)<', shown.text)
    assert link
    token = link.group(1).rsplit("/", 1)[1]
    assert token.encode() not in _db_bytes(portal)
    # Reload: no second invitation, no link again.
    again = ada.get("/answer", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/admin/dashboard"
    with portal.db.session() as s:
        assert all("answer" not in row.data for row in s.scalars(select(WebSession)))


def test_a_refused_form_comes_back_with_its_values_but_never_a_password(portal: Portal):
    with TestClient(create_app(portal), base_url="http://portal.test") as visitor:
        page = visitor.get("/admin/sign-in")
        form = {
            "csrf_token": csrf_of(page.text),
            "email": "nobody@example.com",
            "password": "my secret guess 123",
        }
        posted = visitor.post("/admin/sign-in", data=form, follow_redirects=False)
        assert posted.status_code == 303 and posted.headers["location"] == "/admin/sign-in"
        # A visitor who is nobody yet gets an anonymous session for it, under the same id.
        with portal.db.session() as s:
            assert [row.kind for row in s.scalars(select(WebSession))] == ["anonymous"]
        answer = answer_of(visitor, posted)
        assert answer.status_code == 400
        assert "do not match an admin account" in answer.text
        assert 'value="nobody@example.com"' in answer.text
        assert "my secret guess 123" not in answer.text
        assert b"my secret guess 123" not in _db_bytes(portal)
        # The same form works again from the page shown (its CSRF token is this session's).
        form["csrf_token"] = csrf_of(answer.text)
        retried = visitor.post("/admin/sign-in", data=form, follow_redirects=False)
        assert answer_of(visitor, retried).status_code == 400
        # The next plain visit (Reload) shows the live page: the refusal was said once.
        assert "do not match" not in visitor.get("/admin/sign-in").text


def test_another_browser_never_sees_the_answer(portal: Portal, ada: TestClient):
    page = ada.get("/admin/invite")
    form = {"csrf_token": csrf_of(page.text), "user_name": "bad name!", "email": "x@example.com"}
    assert ada.post("/admin/invite", data=form, follow_redirects=False).status_code == 303
    with TestClient(create_app(portal), base_url="http://portal.test") as stranger:
        r = stranger.get("/answer", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        r = stranger.get("/admin/invite", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/admin/sign-in")
    shown = ada.get("/admin/invite")
    assert shown.status_code == 400 and 'value="bad name!"' in shown.text

"""The invite page and the outbox, as a signed-in admin sees them (sandbox IAM over HTTP)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.services.portal import Portal
from app.store.models import Invitation, OutboxMail
from tests.conftest import make_portal
from tests.helpers import answer_of, csrf_of, signed_in_admin

ADA = "ada@example.com"


def _signed_in_client(portal: Portal) -> Iterator[TestClient]:
    with signed_in_admin(portal, ADA) as client:
        yield client


@pytest.fixture
def ada(portal: Portal) -> Iterator[TestClient]:
    """A browser where Ada, an admin, is signed in."""
    yield from _signed_in_client(portal)


def _invite(client: TestClient, **fields):
    page = client.get("/admin/invite")
    data = {"csrf_token": csrf_of(page.text), "user_name": "", "email": "", "note": ""}
    data.update(fields)
    # Post/Redirect/Get: the POST answers 303, its answer is the page the 303 leads to.
    return answer_of(client, client.post("/admin/invite", data=data, follow_redirects=False))


def _error_under(html: str, field: str) -> str:
    match = re.search(rf'<p class="error-text" id="f-{field}-error">([^<]*)</p>', html)
    assert match, f"no error under {field}"
    return match.group(1).replace("&#39;", "'")


def test_invite_shows_the_link_once_and_puts_the_mail_in_the_outbox(
    portal: Portal, ada: TestClient, iam_client
):
    r = _invite(
        ada,
        user_name="grace",
        email="grace@example.com",
        groups=["Developers"],
        note="Welcome to the platform team!",
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    link = re.search(r'id="invite-link">(http://portal\.test/enroll/[^<]+)<', r.text)
    assert link, r.text
    assert "This link is shown only now." in r.text
    assert "No mail server configured: the mail to grace@example.com is in the outbox." in r.text
    assert 'data-copy-target="invite-link"' in r.text

    assert [
        g["GroupName"] for g in iam_client.list_groups_for_user(UserName="grace")["Groups"]
    ] == ["MFA"]
    with portal.db.session() as s:
        inv = s.scalars(select(Invitation)).one()
        assert (inv.status, inv.invited_by, inv.extra_groups) == ("pending", ADA, ["Developers"])
        mail = s.scalars(select(OutboxMail)).one()
    assert mail.to == "grace@example.com" and mail.sent_at is None
    # The link lives only in the result page and the mail, never on the form page again.
    assert link.group(1) not in ada.get("/admin/invite").text
    # Reloading the result shows no link again, and sends no form again.
    again = ada.get("/answer", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/admin/dashboard"
    with portal.db.session() as s:
        assert len(s.scalars(select(Invitation)).all()) == 1

    outbox = ada.get("/admin/outbox")
    assert "grace@example.com" in outbox.text and mail.subject in outbox.text
    one = ada.get(f"/admin/outbox/{mail.id}")
    assert link.group(1) in one.text
    assert ADA in one.text and "Welcome to the platform team!" in one.text
    html = ada.get(f"/admin/outbox/{mail.id}/html")
    assert html.status_code == 200 and link.group(1) in html.text
    assert html.headers["content-security-policy"].startswith("sandbox;")


def test_a_taken_name_shows_under_the_user_name(ada: TestClient, iam_client):
    iam_client.create_user(UserName="Linus")
    r = _invite(ada, user_name="linus", email="linus@example.com")
    assert r.status_code == 400
    assert "An IAM user named linus already exists" in _error_under(r.text, "user_name")
    assert 'value="linus@example.com"' in r.text  # what was typed stays


def test_an_already_invited_name_shows_under_the_user_name(ada: TestClient):
    assert _invite(ada, user_name="mary", email="mary@example.com").status_code == 200
    r = _invite(ada, user_name="Mary", email="mary@example.com")
    assert r.status_code == 400
    assert "already invited" in _error_under(r.text, "user_name")


def test_a_group_outside_the_allow_list_shows_under_groups(ada: TestClient, iam_client):
    r = _invite(ada, user_name="ken", email="ken@example.com", groups=["Developers", "Admins"])
    assert r.status_code == 400
    message = _error_under(r.text, "groups")
    assert "Group Admins cannot be granted from the portal" in message
    assert "Developers, ReadOnly" in message
    assert iam_client.list_users()["Users"] == []


def test_bad_name_and_email_show_under_their_fields(ada: TestClient):
    r = _invite(ada, user_name="no spaces please", email="x@example.com")
    assert r.status_code == 400 and "IAM user name" in _error_under(r.text, "user_name")
    r = _invite(ada, user_name="ok.name", email="not-an-email")
    assert r.status_code == 400 and "name@example.com" in _error_under(r.text, "email")


def test_the_form_offers_only_the_allowed_groups(ada: TestClient):
    page = ada.get("/admin/invite").text
    offered = re.findall(r'name="groups" value="([^"]+)"', page)
    assert offered == ["Developers", "ReadOnly"]


def test_outbox_hides_mail_bodies_when_smtp_carries_them(aws, sqlite_url):
    portal = make_portal(aws, sqlite_url, smtp_url="smtp://127.0.0.1:1")
    try:
        for client in _signed_in_client(portal):
            page = client.get("/admin/outbox")
            assert page.status_code == 200
            assert "Mail goes out by SMTP" in page.text
            assert client.get("/admin/outbox/1", follow_redirects=False).status_code == 404
    finally:
        portal.db.dispose()

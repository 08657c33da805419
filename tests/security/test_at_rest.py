"""Attacks on what the portal keeps (issue 13, point 8), and malformed values (never a 500).

- read enrollment links from the outbox table;
- read a temporary password that was never revealed, long after its enrollment ended;
- reuse a web session that expired long ago (it should not even be kept);
- send values the routes cannot hold: `/admin/audit?until=9999-12-31`,
  `/admin/outbox/99999999999999999999999`, and their kind on the other routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app.main import create_app
from app.services.api_tokens import create_api_token
from app.services.housekeeping import run_housekeeping
from app.services.invitations import invite_user
from app.services.outbox import get_mail
from app.services.portal import CLI_ACTOR, Actor, Portal
from app.services.sessions import create_session, get_session
from app.store.models import Enrollment, WebSession
from tests.helpers import Clock, signed_in_admin
from tests.integration.lifecycle_support import enroll

ADA = "ada@example.com"


def _db_bytes(portal: Portal) -> bytes:
    db_file = Path(portal.settings.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))


@pytest.fixture
def admin(portal: Portal) -> Iterator[TestClient]:
    """Ada, signed in, in a browser on the portal (no SMTP: the outbox is readable)."""
    with signed_in_admin(portal, ADA) as client:
        yield client


def _invite_by_mail(portal: Portal) -> tuple[str, int]:
    from app.services.notifications import send_invite_mail

    result = invite_user(portal, user_name="grace", email="grace@example.com", actor=Actor(ADA))
    delivery = send_invite_mail(portal, result=result)
    return result.link, delivery.mail_id


def test_the_outbox_keeps_no_link_in_clear_but_the_admin_reads_it(
    portal: Portal, admin: TestClient
) -> None:
    link, mail_id = _invite_by_mail(portal)
    token = link.rsplit("/", 1)[1]
    assert token.encode() not in _db_bytes(portal)
    with portal.db.session() as s:
        stored = s.execute(text("SELECT text_body, html_body FROM outbox")).one()
    assert all(body.startswith("v1.") for body in stored)
    # The sandbox's outbox page still shows it, decrypted.
    page = admin.get(f"/admin/outbox/{mail_id}")
    assert page.status_code == 200 and link in page.text
    html = admin.get(f"/admin/outbox/{mail_id}/html")
    assert html.status_code == 200 and link in html.text


def test_outbox_text_is_dropped_once_the_link_expired(portal: Portal, admin: TestClient) -> None:
    link, mail_id = _invite_by_mail(portal)
    clock = portal.clock
    assert isinstance(clock, Clock)
    clock.advance(hours=portal.settings.invite_ttl_hours - 1)
    run_housekeeping(portal, holder="test")
    mail = get_mail(portal, mail_id)
    assert mail is not None and link in mail.text_body  # still usable: still there
    clock.advance(hours=2)
    report = run_housekeeping(portal, holder="test")
    assert report.mail_bodies_dropped == 1
    mail = get_mail(portal, mail_id)
    assert mail is not None and mail.text_body == "" and mail.html_body is None
    assert mail.to == "grace@example.com"  # the record of what went to whom stays


def _temp_password_of(portal: Portal, user_name: str) -> str | None:
    with portal.db.session() as s:
        enr = s.scalars(select(Enrollment).where(Enrollment.user_name == user_name)).one()
        return enr.temp_password_encrypted


def test_a_temporary_password_never_revealed_is_deleted_when_its_enrollment_ends(
    portal: Portal,
) -> None:
    # Real time: the sandbox checks the codes against its own clock.
    done = invite_user(portal, user_name="alan", email="alan@example.com", actor=Actor(ADA))
    kept = invite_user(portal, user_name="joan", email="joan@example.com", actor=Actor(ADA))
    enroll(portal, done.link)
    enroll(portal, kept.link)
    assert _temp_password_of(portal, "alan") is not None
    # Joan's browser is still on the way to her done page: her password must wait for her.
    with portal.db.session() as s:
        joan = s.scalars(select(Enrollment).where(Enrollment.user_name == "joan")).one().id
    create_session(portal, kind="enroll", enrollment_id=joan)

    report = run_housekeeping(portal, holder="test")

    assert report.passwords_deleted == 1
    assert _temp_password_of(portal, "alan") is None
    assert _temp_password_of(portal, "joan") is not None


def test_expired_sessions_are_purged(portal: Portal) -> None:
    clock = Clock()
    portal.clock = clock
    idle = create_session(portal, kind="enroll")
    clock.advance(minutes=20)
    live = create_session(portal, kind="enroll")
    clock.advance(minutes=15)  # the first is idle for 35 minutes (30 allowed), the second 15

    report = run_housekeeping(portal, holder="test")

    assert report.sessions_purged == 1
    with portal.db.session() as s:
        assert len(s.scalars(select(WebSession)).all()) == 1
    assert get_session(portal, live) is not None and get_session(portal, idle) is None
    clock.advance(hours=3)  # past the absolute timeout, however recently seen
    assert run_housekeeping(portal, holder="test").sessions_purged == 1


HUGE = "99999999999999999999999"
ADMIN_URLS = [
    "/admin/audit?until=9999-12-31",
    "/admin/audit?until=0001-01-01T00:00:00%2B14:00",
    "/admin/audit?since=not-a-date",
    f"/admin/audit?page={HUGE}",
    "/admin/audit?page=-1",
    "/admin/audit.csv?until=9999-12-31",
    "/admin/audit.jsonl?until=9999-12-31",
    f"/admin/outbox/{HUGE}",
    f"/admin/outbox/{HUGE}/html",
    "/admin/outbox/-5",
    "/admin/outbox/0",
    "/admin/outbox/abc",
    f"/admin/outbox?sent={HUGE}",
    f"/admin/dashboard?page={HUGE}",
    "/admin/dashboard?status=%00",
    f"/admin/users/{'x' * 300}",
    "/admin/users/%00",
    "/admin/users/a%2Fb",
    "/admin/users/%F0%9F%92%A5",
    f"/admin/users/{'x' * 300}/reset-mfa",
    f"/admin/users/{'x' * 300}/send-link",
    f"/admin/users/{'x' * 300}/offboard",
]


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_malformed_admin_values_answer_400_or_404(admin: TestClient, url: str) -> None:
    r = admin.get(url, follow_redirects=False)
    assert r.status_code in (400, 404), (r.status_code, r.text[:300])


API_URLS = [
    f"/api/v1/users?page={HUGE}",
    "/api/v1/users?page=0",
    "/api/v1/users?per_page=abc",
    "/api/v1/users?status=%00",
    f"/api/v1/users/{'x' * 300}",
    "/api/v1/users/%00",
    "/api/v1/users/%F0%9F%92%A5",
]


@pytest.mark.parametrize("url", API_URLS)
def test_malformed_api_values_answer_4xx_never_500(portal: Portal, url: str) -> None:
    token = create_api_token(portal, name="probe", actor=CLI_ACTOR)
    with TestClient(create_app(portal), base_url="http://portal.test") as client:
        r = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (400, 404, 422), (r.status_code, r.text[:300])

"""The admin dashboard and user page, against the sandbox over real HTTP."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.sandbox import Sandbox
from app.security.csrf import csrf_token_for
from app.services import enrollment, leases
from app.services.bootstrap import bootstrap
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Actor, Portal
from app.services.sessions import create_session
from app.store.models import Admin, AuditEvent
from tests.conftest import make_portal
from tests.faultproxy import FaultProxy
from tests.helpers import Clock

ADA = "ada@example.com"
NEW_HIRE = Actor("new hire", "198.51.100.7")


class AdminClient(TestClient):
    csrf: str


def signed_in(portal: Portal) -> AdminClient:
    """A browser with Ada's admin session (signing in itself is tested in test_admin_auth)."""
    with portal.db.session() as s:
        admin = Admin(email=ADA)
        s.add(admin)
        s.flush()
        admin_id = admin.id
    raw = create_session(portal, kind="admin", admin_id=admin_id, data={"email": ADA})
    client = AdminClient(create_app(portal), base_url="http://portal.test")
    client.cookies.set("iam_onboard", raw)
    client.csrf = csrf_token_for(secret=portal.settings.secret_key, session_id=raw)
    return client


@pytest.fixture
def any_portal(aws: Sandbox, database_url: str) -> Iterator[Portal]:
    """A bootstrapped sandbox on SQLite, and on PostgreSQL when one is configured."""
    p = make_portal(aws, database_url)
    bootstrap(p, dry_run=False, actor=CLI_ACTOR)
    yield p
    p.db.dispose()


@pytest.fixture
def ada(portal: Portal) -> Iterator[AdminClient]:
    with signed_in(portal) as client:
        yield client


def refresh(client: AdminClient, **form: str):
    r = client.post(
        "/admin/dashboard/refresh", data={"csrf_token": client.csrf, **form}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    return client.get(r.headers["location"])


def table(html: str) -> dict[str, str]:
    """User name -> status, as the dashboard's table shows them."""
    rows = re.findall(
        r'<td><span class="status status-\w+">([^<]+)</span></td>\s*'
        r'<td><a href="/admin/users/[^"]+">([^<]+)</a>',
        html,
    )
    return {name: status for status, name in rows}


def mfa_user(iam_client, name: str, *, group: str | None) -> None:
    """An IAM user made outside the portal, with an enabled virtual MFA device."""
    iam_client.create_user(UserName=name)
    if group:
        iam_client.add_user_to_group(UserName=name, GroupName=group)
    device = iam_client.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
    totp = pyotp.TOTP(device["Base32StringSeed"].decode())
    step = int(time.time()) // 30
    iam_client.enable_mfa_device(
        UserName=name,
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=totp.generate_otp(step - 1),
        AuthenticationCode2=totp.generate_otp(step),
    )


def enroll(portal: Portal, link: str) -> None:
    """The new hire's part, through the enrollment service: link, device, two codes, finish."""
    token = link.rsplit("/", 1)[1]
    enrollment_id = enrollment.start_enrollment(portal, token=token, actor=NEW_HIRE)
    enrollment.prepare_device(portal, enrollment_id=enrollment_id, actor=NEW_HIRE)
    view = enrollment.enrollment_view(portal, enrollment_id=enrollment_id)
    assert view.scan is not None
    totp = pyotp.TOTP(view.scan.seed)
    step = int(portal.clock().timestamp()) // 30
    enrollment.verify_codes(
        portal,
        enrollment_id=enrollment_id,
        code1=totp.generate_otp(step - 1),
        code2=totp.generate_otp(step),
        actor=NEW_HIRE,
    )
    enrollment.finish_enrollment(portal, enrollment_id=enrollment_id, actor=NEW_HIRE)


def refresh_events(portal: Portal) -> list[AuditEvent]:
    with portal.db.session() as s:
        query = select(AuditEvent).where(AuditEvent.action == "directory.refresh")
        return list(s.scalars(query.order_by(AuditEvent.id)))


def test_admin_pages_need_an_admin_session(portal: Portal):
    with TestClient(create_app(portal), base_url="http://portal.test") as stranger:
        for path in ("/admin/dashboard", "/admin/dashboard.csv", "/admin/users/alice"):
            r = stranger.get(path, follow_redirects=False)
            assert r.status_code == 303
            assert r.headers["location"].startswith("/admin/sign-in?next=")
    with signed_in(portal) as ada:
        r = ada.post("/admin/dashboard/refresh", data={}, follow_redirects=False)
        assert r.status_code == 403  # no CSRF token: AWS was not read
    assert refresh_events(portal) == []


def test_first_visit_shows_the_empty_state_without_calling_iam(portal: Portal, ada: AdminClient):
    calls: list[str] = []
    portal.on_iam_call = calls.append
    page = ada.get("/admin/dashboard")
    assert page.status_code == 200
    assert "have not been read yet" in page.text
    assert 'action="/admin/dashboard/refresh"' in page.text
    assert calls == []


def test_refresh_shows_every_user_with_its_status(any_portal: Portal, iam_client):
    portal = any_portal
    iam_client.create_user(UserName="carol")  # no MFA, no group
    mfa_user(iam_client, "dave", group="MFA")
    mfa_user(iam_client, "erin", group=None)
    invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)

    with signed_in(portal) as ada:
        page = refresh(ada)
    assert "The list was refreshed from AWS." in page.text
    assert "Last refreshed" in page.text
    assert "MFA of other device kinds as of" in page.text
    assert "up to 4 hours old" in page.text
    assert table(page.text) == {
        "alice": "invited",
        "carol": "no MFA",
        "dave": "MFA (unmanaged)",
        "erin": "outside MFA group",
    }
    assert "no MFA (1)" in page.text and "invited (1)" in page.text
    assert "alice@example.com" in page.text
    [event] = refresh_events(portal)
    assert event.actor == ADA
    assert event.detail and event.detail.startswith("4 users")


def test_the_dashboard_says_invited_then_enrolled(any_portal: Portal, iam_client):
    portal = any_portal
    ada = signed_in(portal)
    refresh(ada)
    result = invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    # Portal invitations show at once, without waiting for the next refresh.
    assert table(ada.get("/admin/dashboard").text) == {"alice": "invited"}

    enroll(portal, result.link)
    page = ada.get("/admin/dashboard")
    assert table(page.text) == {"alice": "enrolled"}

    page = refresh(ada)
    assert table(page.text) == {"alice": "enrolled"}
    row = page.text[page.text.index('href="/admin/users/alice"') :]
    assert re.search(r"<td>1</td>", row[: row.index("</tr>")])  # one MFA device
    assert "enrolled (1)" in page.text


def test_expired_invitations_come_first(portal: Portal, iam_client):
    clock = Clock()
    portal.clock = clock
    for name in ("aaron", "zoe"):
        iam_client.create_user(UserName=name)
    invite_user(portal, user_name="yann", email="yann@example.com", actor=CLI_ACTOR)
    clock.advance(hours=portal.settings.invite_ttl_hours + 1)
    invite_user(portal, user_name="bea", email="bea@example.com", actor=CLI_ACTOR)
    with signed_in(portal) as ada:
        page = refresh(ada)
    assert list(table(page.text).items()) == [
        ("yann", "invite expired"),
        ("aaron", "no MFA"),
        ("zoe", "no MFA"),
        ("bea", "invited"),
    ]


def test_search_filter_and_pages(portal: Portal, ada: AdminClient, iam_client):
    for i in range(118):
        iam_client.create_user(UserName=f"user{i:03d}")
    invite_user(portal, user_name="bob", email="robert@example.com", actor=CLI_ACTOR)
    invite_user(portal, user_name="carla", email="carla@example.com", actor=CLI_ACTOR)
    page = refresh(ada)
    assert "Page 1 of 3, 120 users" in page.text
    assert len(table(page.text)) == 50
    assert 'href="/admin/dashboard?page=2"' in page.text

    seen: set[str] = set()
    for number in (1, 2, 3):
        seen |= set(table(ada.get(f"/admin/dashboard?page={number}").text))
    assert len(seen) == 120

    found = ada.get("/admin/dashboard", params={"q": "ROBERT"})
    assert table(found.text) == {"bob": "invited"}
    invited = ada.get("/admin/dashboard", params={"status": "invited"})
    assert set(table(invited.text)) == {"bob", "carla"}
    assert "Page 1 of 1, 2 users" in invited.text
    both = ada.get("/admin/dashboard", params={"status": "no_mfa", "q": "user11"})
    assert set(table(both.text)) == {f"user11{i}" for i in range(8)}
    # The filter survives a refresh.
    kept = refresh(ada, q="carla", status="invited")
    assert table(kept.text) == {"carla": "invited"}

    bad = ada.get("/admin/dashboard", params={"status": "nonsense"})
    assert bad.status_code == 400
    assert "Unknown status nonsense" in bad.text


def test_csv_export_is_the_filtered_set_and_safe_in_a_spreadsheet(
    portal: Portal, ada: AdminClient, iam_client
):
    for name in ("=1+2", "+sum", "-neg", "@at", "plain"):
        iam_client.create_user(UserName=name)
    invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    refresh(ada)
    r = ada.get("/admin/dashboard.csv", params={"status": "no_mfa"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    names = {row["user_name"] for row in rows}
    assert names == {"'=1+2", "'+sum", "'-neg", "'@at", "plain"}
    assert {row["status"] for row in rows} == {"no MFA"}
    everyone = list(csv.DictReader(io.StringIO(ada.get("/admin/dashboard.csv").text)))
    assert len(everyone) == 6
    [alice] = [row for row in everyone if row["user_name"] == "alice"]
    assert alice["email"] == "alice@example.com" and alice["invited_by"] == "cli"


def test_user_page_shows_live_facts_invitation_and_timeline(
    portal: Portal, ada: AdminClient, iam_client
):
    invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    page = ada.get("/admin/users/alice")
    assert page.status_code == 200
    assert "alice@example.com" in page.text
    assert "<dt>Groups</dt>\n    <dd>MFA" in page.text
    assert "pending (link expires" in page.text
    for action in ("iam.create_user", "iam.add_user_to_group", "invite"):
        assert f"<strong>{action}</strong>" in page.text
    assert "Not in the MFA group" not in page.text

    iam_client.create_user(UserName="carol")
    key = iam_client.create_access_key(UserName="carol")["AccessKey"]["AccessKeyId"]
    iam_client.create_login_profile(UserName="carol", Password="Str0ng!Passw0rd")
    page = ada.get("/admin/users/carol")
    assert page.status_code == 200
    assert key in page.text
    assert "The portal did not invite this user." in page.text
    assert "Not in the MFA group MFA" in page.text
    assert '<span class="status status-bad">no MFA</span>' in page.text

    missing = ada.get("/admin/users/nobody")
    assert missing.status_code == 404
    assert "There is no IAM user named nobody" in missing.text


def test_report_failure_still_refreshes_and_says_so(aws: Sandbox, sqlite_url: str, iam_client):
    proxy = FaultProxy(aws.url)
    try:
        portal = make_portal(aws, sqlite_url, endpoint=proxy.url)
        bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
        iam_client.create_user(UserName="carol")
        proxy.inject("ServiceFailure", action="GenerateCredentialReport")
        with signed_in(portal) as ada:
            page = refresh(ada)
            assert table(page.text) == {"carol": "no MFA"}
            assert "credential report could not be read" in page.text
            assert "security keys and hardware tokens are missing" in page.text

            proxy.clear()
            proxy.inject("ServiceFailure", action="ListUsers")
            r = ada.post("/admin/dashboard/refresh", data={"csrf_token": ada.csrf})
            assert r.status_code == 503
            assert "AWS IAM is not answering properly right now" in r.text
            assert table(r.text) == {"carol": "no MFA"}  # the last good list stays
        events = refresh_events(portal)
        assert [e.outcome for e in events] == ["ok", "failed"]
        portal.db.dispose()
    finally:
        proxy.stop()


def test_one_refresh_at_a_time(portal: Portal, ada: AdminClient):
    # Another replica (or admin) is reading IAM right now: a second read would double the calls.
    assert leases.acquire(
        portal, name="directory-refresh", holder="other", ttl=timedelta(minutes=5)
    )
    r = ada.post("/admin/dashboard/refresh", data={"csrf_token": ada.csrf})
    assert r.status_code == 409
    assert "A refresh is already running" in r.text
    leases.release(portal, name="directory-refresh", holder="other")
    assert refresh(ada).status_code == 200

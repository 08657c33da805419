"""The lifecycle in the admin console: a signed-in admin with a real portal TOTP, the sandbox."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.cli import main as cli_main
from app.main import create_app
from app.sandbox import Sandbox
from app.services.admins import create_admin
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Portal
from app.store.models import Admin, AuditEvent
from tests.conftest import TEST_SECRET
from tests.helpers import Clock, answer_of, csrf_of, set_up_admin, sign_in_admin, totp_at
from tests.integration.lifecycle_support import (
    MANAGED_TAGS,
    build_busy_user,
    enroll,
    has_login_profile,
)

ADA = "ada@example.com"
LINK = re.compile(r'id="enroll-link">(http://portal\.test/enroll/[^<]+)<')


@dataclass
class SignedIn:
    """Ada in a browser, signed in with password and portal TOTP."""

    client: TestClient
    seed: str
    clock: Clock
    portal: Portal

    def code(self) -> str:
        """A code from her app, one step after the last one she used."""
        self.clock.advance(seconds=30)
        return totp_at(self.seed, self.clock.step())

    def post(self, path: str, page: str, **form: object):
        """Submit a form from `page` (its CSRF token) to `path`; the page answering it comes
        after the redirect (Post/Redirect/Get)."""
        r = self.client.post(
            path, data={"csrf_token": csrf_of(page), **form}, follow_redirects=False
        )
        return answer_of(self.client, r)


@pytest.fixture
def ada(portal: Portal, aws: Sandbox) -> Iterator[SignedIn]:
    clock = Clock()
    portal.clock = clock
    aws.set_clock(clock)  # the portal and the sandbox check codes at the same time
    with TestClient(create_app(portal), base_url="http://portal.test") as client:
        link = create_admin(portal, email=ADA, actor=CLI_ACTOR).link
        seed = set_up_admin(client, link.removeprefix("http://portal.test"), clock)
        sign_in_admin(client, ADA, seed, clock)
        yield SignedIn(client, seed, clock, portal)


def link_on(page: str) -> str:
    found = LINK.search(page)
    assert found, "no enrollment link on the page"
    return html.unescape(found.group(1))


def user_names(iam_client) -> list[str]:
    return [u["UserName"] for u in iam_client.list_users()["Users"]]


def groups_of(iam_client, name: str) -> list[str]:
    return [g["GroupName"] for g in iam_client.list_groups_for_user(UserName=name)["Groups"]]


def mfa_devices(iam_client, name: str) -> list[dict]:
    return iam_client.list_mfa_devices(UserName=name)["MFADevices"]


def landing(client: TestClient, link: str) -> int:
    return client.get(link.removeprefix("http://portal.test")).status_code


def enroll_now(ada: SignedIn, link: str) -> str:
    return enroll(ada.portal, link)


# -- which actions the user page offers ---------------------------------------------------------
def test_the_user_page_offers_only_the_actions_that_fit(ada: SignedIn, iam_client):
    invite_user(ada.portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    page = ada.client.get("/admin/users/alice").text
    assert 'action="/admin/users/alice/resend"' in page
    assert 'action="/admin/users/alice/revoke"' in page
    assert 'name="delete_user"' in page  # never enrolled: it may go with the link
    assert "/admin/users/alice/offboard" in page
    assert "/admin/users/alice/reset-mfa" not in page
    assert "/admin/users/alice/send-link" not in page

    result = invite_user(ada.portal, user_name="bob", email="bob@example.com", actor=CLI_ACTOR)
    enroll_now(ada, result.link)
    page = ada.client.get("/admin/users/bob").text
    assert "/admin/users/bob/reset-mfa" in page and "/admin/users/bob/offboard" in page
    assert "/admin/users/bob/resend" not in page and "/admin/users/bob/revoke" not in page

    iam_client.create_user(UserName="carol")  # made outside the portal: adopting comes first
    page = ada.client.get("/admin/users/carol").text
    assert "/admin/users/carol/send-link" in page and "does not manage carol" in page
    assert "/admin/users/carol/offboard" not in page
    assert "/admin/users/carol/reset-mfa" not in page  # nothing to reset
    assert "/admin/users/carol/resend" not in page


# -- resend ---------------------------------------------------------------------------------------
def test_resend_shows_a_new_link_once_and_the_old_one_stops_at_once(ada: SignedIn):
    first = invite_user(ada.portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    assert landing(ada.client, first.link) == 200
    page = ada.client.get("/admin/users/alice").text

    r = ada.post("/admin/users/alice/resend", page)

    assert r.status_code == 200  # the answer itself: the link never sits in a redirect
    new_link = link_on(r.text)
    assert new_link != first.link
    assert "This link is shown only now." in r.text
    assert "the mail to alice@example.com is in the outbox" in r.text
    assert landing(ada.client, first.link) == 404
    assert landing(ada.client, new_link) == 200
    with ada.portal.db.session() as s:
        resend = s.scalars(select(AuditEvent).where(AuditEvent.action == "resend")).one()
    assert resend.actor == ADA and resend.target_user == "alice"


def test_resend_of_an_enrolled_user_is_refused_on_the_page(ada: SignedIn):
    result = invite_user(ada.portal, user_name="bob", email="bob@example.com", actor=CLI_ACTOR)
    enroll_now(ada, result.link)
    page = ada.client.get("/admin/users/bob").text
    r = ada.post("/admin/users/bob/resend", page)
    assert r.status_code == 400
    assert "has already enrolled" in html.unescape(r.text)
    assert "enroll-link" not in r.text


# -- revoke ---------------------------------------------------------------------------------------
def test_revoke_with_delete_needs_a_fresh_code_and_removes_a_never_enrolled_user(
    ada: SignedIn, iam_client
):
    result = invite_user(ada.portal, user_name="frank", email="f@example.com", actor=CLI_ACTOR)
    page = ada.client.get("/admin/users/frank").text

    wrong = ada.post("/admin/users/frank/revoke", page, delete_user="1", code="000000")
    assert wrong.status_code == 400
    assert "This code is not right" in wrong.text
    assert user_names(iam_client) == ["frank"]
    assert landing(ada.client, result.link) == 200  # nothing changed

    r = ada.post("/admin/users/frank/revoke", page, delete_user="1", code=ada.code())
    assert r.status_code == 200, r.text
    assert "was deleted (it had never enrolled)" in r.text
    assert user_names(iam_client) == []
    assert landing(ada.client, result.link) == 404


def test_revoke_keeps_the_user_and_will_not_delete_an_enrolled_one(ada: SignedIn, iam_client):
    erin = invite_user(ada.portal, user_name="erin", email="e@example.com", actor=CLI_ACTOR)
    page = ada.client.get("/admin/users/erin").text
    r = ada.post("/admin/users/erin/revoke", page)  # no deletion: no code asked
    assert r.status_code == 200
    assert "no longer works" in r.text
    assert user_names(iam_client) == ["erin"]
    assert landing(ada.client, erin.link) == 404

    gina = invite_user(ada.portal, user_name="gina", email="g@example.com", actor=CLI_ACTOR)
    enroll_now(ada, gina.link)
    page = ada.client.get("/admin/users/gina").text
    assert 'action="/admin/users/gina/revoke"' not in page
    r = ada.post("/admin/users/gina/revoke", page, delete_user="1", code=ada.code())
    assert r.status_code == 400
    assert "already enrolled" in html.unescape(r.text)
    assert sorted(user_names(iam_client)) == ["erin", "gina"]
    assert len(mfa_devices(iam_client, "gina")) == 1


# -- lost device ----------------------------------------------------------------------------------
def test_reset_needs_a_fresh_code_then_removes_device_and_password_and_relinks(
    ada: SignedIn, iam_client
):
    first = invite_user(ada.portal, user_name="ivy", email="ivy@example.com", actor=CLI_ACTOR)
    seed1 = enroll_now(ada, first.link)
    assert has_login_profile(iam_client, "ivy") and len(mfa_devices(iam_client, "ivy")) == 1

    page = ada.client.get("/admin/users/ivy/reset-mfa")
    assert page.status_code == 200
    serial = mfa_devices(iam_client, "ivy")[0]["SerialNumber"]
    assert serial in page.text and "console password" in page.text
    assert "email on record: ivy@example.com" in page.text  # links go only there

    wrong = ada.post(
        "/admin/users/ivy/reset-mfa",
        page.text,
        email="ivy@example.com",
        code=totp_at(ada.seed, ada.clock.step() + 20),  # a real code, but not of now
    )
    assert wrong.status_code == 400
    assert "This code is not right" in wrong.text
    assert len(mfa_devices(iam_client, "ivy")) == 1 and has_login_profile(iam_client, "ivy")

    code = ada.code()
    r = ada.post("/admin/users/ivy/reset-mfa", page.text, email="ivy@example.com", code=code)
    assert r.status_code == 200, r.text
    new_link = link_on(r.text)
    assert mfa_devices(iam_client, "ivy") == []
    assert not has_login_profile(iam_client, "ivy")
    assert "MFA" in groups_of(iam_client, "ivy")

    # The same code again is a replay: refused, nothing happens.
    again = ada.post("/admin/users/ivy/reset-mfa", page.text, email="ivy@example.com", code=code)
    assert again.status_code == 400 and "already used" in again.text
    assert landing(ada.client, new_link) == 200

    seed2 = enroll_now(ada, new_link)
    assert seed2 != seed1
    assert len(mfa_devices(iam_client, "ivy")) == 1 and has_login_profile(iam_client, "ivy")
    with ada.portal.db.session() as s:
        step_ups = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "admin.step_up")))
    assert [e.outcome for e in step_ups] == ["failed", "ok", "failed"]


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_too_many_wrong_step_up_codes_lock_the_admin_out_until_unlocked(
    ada: SignedIn, iam_client, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
):
    iam_client.create_user(UserName="zed", Tags=MANAGED_TAGS)
    page = ada.client.get("/admin/users/zed/offboard").text
    for _ in range(9):
        r = ada.post("/admin/users/zed/offboard", page, confirm_name="zed", code="000000")
        assert r.status_code == 400
    r = ada.post("/admin/users/zed/offboard", page, confirm_name="zed", code="000000")
    assert r.status_code == 429
    assert "locked" in r.text
    assert user_names(iam_client) == ["zed"]
    # The session that guessed is over, and signing in again is refused while locked.
    r = ada.client.get("/admin/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/sign-in")
    with pytest.raises(AssertionError):
        sign_in_admin(ada.client, ADA, ada.seed, ada.clock)

    monkeypatch.setenv("IAM_ONBOARD_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("IAM_ONBOARD_SECRET_KEY", TEST_SECRET)
    assert cli_main(["unlock-admin", ADA]) == 0
    ada.client.cookies.clear()
    sign_in_admin(ada.client, ADA, ada.seed, ada.clock)
    assert ada.client.get("/admin/dashboard").status_code == 200


def test_a_deactivated_admin_is_signed_out_at_the_next_request(ada: SignedIn):
    assert ada.client.get("/admin/dashboard", follow_redirects=False).status_code == 200
    with ada.portal.db.session() as s:
        s.execute(update(Admin).values(active=False))
    r = ada.client.get("/admin/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/sign-in")


# -- existing IAM users ---------------------------------------------------------------------------
def test_send_link_warns_about_a_key_in_use_and_enrolls_the_existing_user_by_a_deadline(
    ada: SignedIn, iam_client, aws: Sandbox
):
    iam_client.create_user(
        UserName="ken", Tags=[{"Key": "iam-onboard:email", "Value": "ken@example.com"}]
    )
    key = iam_client.create_access_key(UserName="ken")["AccessKey"]
    boto3.client(
        "iam",
        endpoint_url=aws.url,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    ).list_groups()  # a program using the key: the sandbox records its last use

    page = ada.client.get("/admin/users/ken/send-link")
    assert page.status_code == 200
    assert key["AccessKeyId"] in page.text and "get-session-token" in page.text
    assert 'value="ken@example.com"' in page.text  # from the iam-onboard:email tag

    deadline = (ada.clock.now + timedelta(days=14)).date().isoformat()
    r = ada.post(
        "/admin/users/ken/send-link",
        page.text,
        email="ken@example.com",
        enforce="deadline",
        deadline=deadline,
        code=ada.code(),
    )
    assert r.status_code == 200, r.text
    link = link_on(r.text)
    assert key["AccessKeyId"] in r.text  # the warning comes with the link too
    assert groups_of(iam_client, "ken") == []  # the grace period: not in the MFA group yet

    enroll_now(ada, link)
    assert groups_of(iam_client, "ken") == ["MFA"]
    assert len(mfa_devices(iam_client, "ken")) == 1
    assert [n for n in user_names(iam_client) if n.lower() == "ken"] == ["ken"]


def test_send_link_enforced_now_and_its_form_errors(ada: SignedIn, iam_client):
    iam_client.create_user(UserName="judy")
    iam_client.create_login_profile(UserName="judy", Password="Her-own-Passw0rd!")
    page = ada.client.get("/admin/users/judy/send-link")
    assert 'name="replace_login_profile"' in page.text
    assert "Access keys in use" not in page.text

    r = ada.post(
        "/admin/users/judy/send-link",
        page.text,
        email="judy@example.com",
        enforce="deadline",
        code=ada.code(),
    )
    assert r.status_code == 400 and "Choose the date" in r.text
    yesterday = (ada.clock.now - timedelta(days=1)).date().isoformat()
    r = ada.post(
        "/admin/users/judy/send-link",
        page.text,
        email="judy@example.com",
        enforce="deadline",
        deadline=yesterday,
        code=ada.code(),
    )
    assert r.status_code == 400 and "deadline in the future" in r.text
    r = ada.post(
        "/admin/users/judy/send-link",
        page.text,
        email="not-an-email",
        enforce="now",
        code=ada.code(),
    )
    assert r.status_code == 400 and 'id="f-email-error"' in r.text
    assert groups_of(iam_client, "judy") == []  # refusals changed nothing

    r = ada.post(
        "/admin/users/judy/send-link",
        page.text,
        email="judy@example.com",
        enforce="now",
        groups=["Developers"],
        code=ada.code(),
    )
    assert r.status_code == 200, r.text
    assert groups_of(iam_client, "judy") == ["MFA"]  # now; Developers waits for MFA
    link = link_on(r.text)
    again = ada.post(
        "/admin/users/judy/send-link", page.text, email="judy@example.com", code=ada.code()
    )
    assert again.status_code == 400 and "resend it instead" in again.text

    enroll_now(ada, link)
    assert sorted(groups_of(iam_client, "judy")) == ["Developers", "MFA"]
    assert has_login_profile(iam_client, "judy")


# -- offboarding ----------------------------------------------------------------------------------
def test_offboard_lists_everything_asks_for_the_name_and_a_code_then_removes_it_all(
    ada: SignedIn, iam_client
):
    made = build_busy_user(iam_client, "mallory")
    page = ada.client.get("/admin/users/mallory/offboard")
    assert page.status_code == 200
    text = html.unescape(page.text)
    for item in [*made["keys"], made["cert"], made["ssh"], made["device"], made["policy"]]:
        assert item in text
    for label in ("login profile", "scratch-bucket", "Developers", "ReadOnly"):
        assert label in text

    wrong = ada.post(
        "/admin/users/mallory/offboard", page.text, confirm_name="Mallory", code=ada.code()
    )
    assert wrong.status_code == 400
    assert "Type the user name mallory exactly" in wrong.text
    assert iam_client.get_user(UserName="mallory")

    no_code = ada.post("/admin/users/mallory/offboard", page.text, confirm_name="mallory")
    assert no_code.status_code == 400
    assert iam_client.get_user(UserName="mallory")

    r = ada.post(
        "/admin/users/mallory/offboard", page.text, confirm_name="mallory", code=ada.code()
    )
    assert r.status_code == 200, r.text
    assert "mallory was offboarded" in r.text
    assert made["ssh"] in html.unescape(r.text)
    assert "mallory" not in user_names(iam_client)


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_kwargs):
        yield self._body


def _fail_once(portal: Portal, operation: str) -> None:
    """AWS answers `operation` once with AccessDenied (not retried), then normally."""
    pending = [True]

    def before_send(request, **_kwargs):
        if pending:
            pending.clear()
            body = (
                b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                b"<Message>injected</Message></Error><RequestId>req-injected</RequestId>"
                b"</ErrorResponse>"
            )
            return AWSResponse("https://iam.amazonaws.com/", 403, {}, _Raw(body))
        return None

    portal.iam_clients[0].meta.events.register(f"before-send.iam.{operation}", before_send)


def test_offboard_stopped_midway_shows_what_is_left_and_a_second_run_finishes(
    ada: SignedIn, iam_client
):
    made = build_busy_user(iam_client, "nina")
    page = ada.client.get("/admin/users/nina/offboard").text
    _fail_once(ada.portal, "DeleteSSHPublicKey")

    r = ada.post("/admin/users/nina/offboard", page, confirm_name="nina", code=ada.code())

    assert r.status_code >= 400
    assert "Offboarding stopped midway" in r.text
    assert "Run offboarding again" in r.text
    items = html.unescape(r.text.split('id="offboard-items"')[1].split("</ol>")[0])
    assert made["ssh"] in items and made["cert"] not in items  # gone before the failure
    assert made["keys"][0] not in items and "ReadOnly" in items
    assert iam_client.get_user(UserName="nina")

    r = ada.post("/admin/users/nina/offboard", r.text, confirm_name="nina", code=ada.code())
    assert r.status_code == 200, r.text
    assert "nina" not in user_names(iam_client)


# -- CSRF ----------------------------------------------------------------------------------------
def test_every_lifecycle_post_without_a_csrf_token_is_refused(ada: SignedIn, iam_client):
    result = invite_user(ada.portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    iam_client.create_user(UserName="carol")
    posts = {
        "/admin/users/alice/resend": {},
        "/admin/users/alice/revoke": {"delete_user": "1", "code": ada.code()},
        "/admin/users/carol/reset-mfa": {"email": "c@example.com", "code": ada.code()},
        "/admin/users/carol/send-link": {"email": "c@example.com", "enforce": "now"},
        "/admin/users/carol/offboard": {"confirm_name": "carol", "code": ada.code()},
    }
    for path, form in posts.items():
        r = ada.client.post(path, data=form, follow_redirects=False)
        assert r.status_code == 403, path
    assert sorted(user_names(iam_client)) == ["alice", "carol"]
    assert groups_of(iam_client, "carol") == []
    assert landing(ada.client, result.link) == 200

"""The new hire's journey through the browser pages, against the sandbox over real HTTP.

Codes come from the seed the page shows, for real time: the sandbox's EnableMFADevice checks
them against its own clock, as AWS does.
"""

from __future__ import annotations

import base64
import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.aws.errors import Throttled
from app.main import create_app
from app.security.secretbox import SecretBox
from app.security.temp_password import PasswordPolicy
from app.security.tokens import hash_token
from app.services import enrollment as enrollment_service
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Actor, Portal
from app.store.models import AuditEvent, Enrollment, Invitation, OutboxMail, WebSession
from tests.conftest import skip_or_fail
from tests.helpers import csrf_of, serve_in_thread
from tests.qr_decode import decode_svg, svg_in_page

UNUSABLE = "This link can't be used any more. Ask the person who invited you for a new one."


# -- a newcomer with a browser-like client --------------------------------------------------


def secret_of(html: str) -> str:
    found = re.search(r'<code class="secret" id="secret"[^>]*>([^<]+)</code>', html)
    assert found, "the scan page shows no secret"
    grouped = found.group(1).strip()
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{1,4})*", grouped), grouped
    return grouped.replace(" ", "")


def otpauth_of(html: str) -> str:
    found = re.search(r'href="(otpauth://[^"]+)"', html)
    assert found, "the scan page has no otpauth:// link"
    return unescape(found.group(1))


def password_of(html: str) -> str:
    found = re.search(r'<code class="secret" id="temp-password">([^<]+)</code>', html)
    assert found, "the done page shows no temporary password"
    return unescape(found.group(1))


def pyotp_pair(seed: str, first_offset: int = -1) -> tuple[str, str]:
    """The codes of steps now+offset and the one after, as the phone showed them."""
    now_step = int(time.time()) // 30
    totp = pyotp.TOTP(seed)
    first = (now_step + first_offset) * 30
    return totp.at(first), totp.at(first + 30)


def oathtool_pair(seed: str) -> tuple[str, str]:
    """Two consecutive codes from GNU oathtool: the previous step's and the current one's."""
    oathtool = shutil.which("oathtool")
    if oathtool is None:
        skip_or_fail("oathtool is not installed (apt-get install oathtool)")
        raise AssertionError("unreachable")
    start = (int(time.time()) // 30 - 1) * 30
    out = subprocess.run(
        [oathtool, "--totp", "-b", "-w", "1", "--now", f"@{start}", seed],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(out) == 2 and all(re.fullmatch(r"\d{6}", c) for c in out), out
    return out[0], out[1]


@dataclass
class Newcomer:
    client: TestClient
    link_path: str
    urls: list[str]

    @property
    def token(self) -> str:
        return self.link_path.rsplit("/", 1)[1]

    def get(self, url: str) -> httpx.Response:
        r = self.client.get(url, follow_redirects=False)
        self._seen(r)
        return r

    def post(self, url: str, data: dict[str, str]) -> httpx.Response:
        r = self.client.post(url, data=data, follow_redirects=False)
        self._seen(r)
        return r

    def _seen(self, r: httpx.Response) -> None:
        self.urls.append(str(r.request.url))
        if "location" in r.headers:
            self.urls.append(r.headers["location"])

    def start(self) -> httpx.Response:
        page = self.get(self.link_path)
        assert page.status_code == 200, page.text
        r = self.post(self.link_path, {"csrf_token": csrf_of(page.text)})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/enroll"
        return r

    def scan(self) -> tuple[httpx.Response, str]:
        page = self.get("/enroll")
        assert page.status_code == 200, page.text
        return page, secret_of(page.text)

    def verify(self, code1: str, code2: str) -> httpx.Response:
        """The answer to the codes: a 303 to the done page, or (Post/Redirect/Get) the page the
        303 leads to, with what went wrong."""
        form = {"csrf_token": csrf_of(self.get("/enroll").text), "code1": code1, "code2": code2}
        r = self.post("/enroll/verify", form)
        assert r.status_code == 303, r.text  # never a page answering the POST itself
        if r.headers["location"] == "/enroll/done":
            return r
        return self.answer(r)

    def answer(self, r: httpx.Response) -> httpx.Response:
        """The page that answers a form: Post/Redirect/Get, so the GET the 303 leads to."""
        assert r.status_code == 303, r.text
        return self.get(r.headers["location"])


def invite(portal: Portal, name: str = "alice", **kw) -> str:  # type: ignore[no-untyped-def]
    kw.setdefault("actor", Actor("boss@example.com"))
    result = invite_user(portal, user_name=name, email=f"{name}@example.com", **kw)
    return urlsplit(result.link).path


@pytest.fixture
def newcomer(portal: Portal) -> Iterator[Newcomer]:
    link_path = invite(portal, extra_groups=["Developers"])
    with TestClient(create_app(portal)) as client:
        yield Newcomer(client, link_path, [])


def db_bytes(portal: Portal) -> bytes:
    db_file = Path(portal.settings.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))


def the_enrollment(portal: Portal) -> Enrollment:
    with portal.db.session() as s:
        return s.scalars(select(Enrollment)).one()


def the_invitation(portal: Portal) -> Invitation:
    with portal.db.session() as s:
        return s.scalars(select(Invitation)).one()


def mfa_serials(iam_client, user: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [d["SerialNumber"] for d in iam_client.list_mfa_devices(UserName=user)["MFADevices"]]


def all_virtual_devices(iam_client) -> list[str]:  # type: ignore[no-untyped-def]
    devices = iam_client.list_virtual_mfa_devices(AssignmentStatus="Any")["VirtualMFADevices"]
    return [d["SerialNumber"] for d in devices]


# -- the journey -----------------------------------------------------------------------------
def test_landing_shows_inviter_user_account_steps_and_expiry(newcomer: Newcomer, portal: Portal):
    page = newcomer.get(newcomer.link_path)
    assert page.status_code == 200
    text = page.text
    assert "boss@example.com invited you to the AWS account 123456789012" in text
    assert "<code>alice</code>" in text
    assert re.search(r"<ol class=\"steps\">(\s*<li>.*?</li>){4}\s*</ol>", text, re.DOTALL)
    expires = the_invitation(portal).expires_at
    assert f"{expires:%Y-%m-%d %H:%M} UTC" in text
    assert page.headers["cache-control"] == "no-store"


def test_full_journey_from_link_to_done_page(newcomer: Newcomer, portal: Portal, iam_client):
    newcomer.start()
    page, seed = newcomer.scan()
    assert page.headers["cache-control"] == "no-store"
    uri = otpauth_of(page.text)
    # What a phone's camera reads from the QR code is the portal's own URI, with issuer.
    assert decode_svg(svg_in_page(page.text)) == [uri]
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/AWS 123456789012:alice"
    query = parse_qs(parts.query)
    assert query == {"secret": [seed], "issuer": ["AWS 123456789012"]}
    assert len(seed) == 64  # the Base32StringSeed CreateVirtualMFADevice gave

    done = newcomer.verify(*pyotp_pair(seed))
    assert done.status_code == 303 and done.headers["location"] == "/enroll/done"
    shown = newcomer.get("/enroll/done")
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    text = shown.text
    serial = "arn:aws:iam::123456789012:mfa/iam-onboard/alice"
    assert "https://123456789012.signin.aws.amazon.com/console" in text
    assert '<code id="user-name">alice</code>' in text
    password = password_of(text)
    assert PasswordPolicy.from_aws(None).is_satisfied_by(password)
    assert f"aws sts get-session-token --serial-number {serial} --token-code" in text
    assert f"mfa_serial = {serial}" in text
    assert "choose a new password" in text

    # What the AWS CLI on the sandbox shows afterwards.
    assert mfa_serials(iam_client, "alice") == [serial]
    profile = iam_client.get_login_profile(UserName="alice")["LoginProfile"]
    assert profile["PasswordResetRequired"] is True
    groups = {g["GroupName"] for g in iam_client.list_groups_for_user(UserName="alice")["Groups"]}
    assert groups == {"MFA", "Developers"}
    assert all_virtual_devices(iam_client) == [serial]  # no leftover device

    inv = the_invitation(portal)
    assert inv.status == "used" and inv.used_at is not None
    enr = the_enrollment(portal)
    assert enr.status == "done" and enr.seed_encrypted is None
    assert enr.temp_password_encrypted is None  # shown once, then gone
    with portal.db.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.target_user == "alice")))
        mails = list(s.scalars(select(OutboxMail)))
    actions = [e.action for e in events if e.outcome == "ok"]
    for action in (
        "enroll.start",
        "iam.create_virtual_mfa_device",
        "iam.enable_mfa_device",
        "iam.add_user_to_group",
        "iam.create_login_profile",
        "enroll.done",
    ):
        assert action in actions
    assert [m.to for m in mails] == ["boss@example.com"]  # the inviting admin hears of it

    # Shown once: a reload says so and shows no password.
    again = newcomer.get("/enroll/done")
    assert again.status_code == 200
    assert "already shown" in again.text
    assert password not in again.text
    assert 'id="temp-password"' not in again.text
    # The link is dead now.
    assert newcomer.get(newcomer.link_path).status_code == 404


def test_journey_with_codes_from_gnu_oathtool(newcomer: Newcomer, iam_client):
    newcomer.start()
    _page, seed = newcomer.scan()
    r = newcomer.verify(*oathtool_pair(seed))
    assert r.status_code == 303 and r.headers["location"] == "/enroll/done", r.text
    assert "alice" in newcomer.get("/enroll/done").text
    assert mfa_serials(iam_client, "alice") == ["arn:aws:iam::123456789012:mfa/iam-onboard/alice"]


def test_an_alias_names_the_account_everywhere(portal: Portal, iam_client):
    iam_client.create_account_alias(AccountAlias="example-corp")
    with TestClient(create_app(portal)) as client:
        person = Newcomer(client, invite(portal, actor=CLI_ACTOR), [])
        landing = person.get(person.link_path).text
        assert "Your AWS administrator invited you to the AWS account example-corp" in landing
        person.start()
        page, seed = person.scan()
        assert otpauth_of(page.text).startswith("otpauth://totp/example-corp:alice?")
        assert "issuer=example-corp" in otpauth_of(page.text)
        person.verify(*pyotp_pair(seed))
        done = person.get("/enroll/done").text
    assert "https://example-corp.signin.aws.amazon.com/console" in done


# -- the link -------------------------------------------------------------------------------
def test_get_three_times_changes_nothing_then_post_works_and_no_url_holds_the_token(
    newcomer: Newcomer, portal: Portal, iam_client
):
    with portal.db.session() as s:
        audit_before = len(list(s.scalars(select(AuditEvent))))
    for _ in range(3):
        assert newcomer.get(newcomer.link_path).status_code == 200
    with portal.db.session() as s:
        assert list(s.scalars(select(Enrollment))) == []
        assert list(s.scalars(select(WebSession))) == []
        assert len(list(s.scalars(select(AuditEvent)))) == audit_before
    assert all_virtual_devices(iam_client) == []

    newcomer.urls.clear()
    newcomer.start()
    page, seed = newcomer.scan()
    assert newcomer.token not in page.text
    newcomer.verify(*pyotp_pair(seed))
    done = newcomer.get("/enroll/done")
    assert done.status_code == 200
    later = newcomer.urls[2:]  # after the landing page and the exchange POST itself
    assert later and all(newcomer.token not in url for url in later), later
    assert newcomer.token not in done.text


def test_a_never_valid_link_and_a_finished_ones_say_what_they_are(portal: Portal):
    """Unknown, used, and expired or revoked links: three accurate pages, none inviting a probe
    (a token is 256 random bits)."""

    def main_of(html: str) -> str:
        return re.search(r"<main.*?</main>", html, re.DOTALL).group(0)  # type: ignore[union-attr]

    with TestClient(create_app(portal)) as client:
        unknown = client.get("/enroll/" + "x" * 43)
        revoked = invite(portal, "rita")
        with portal.db.session() as s:
            s.get(Invitation, the_id(portal, "rita")).status = "revoked"  # type: ignore[union-attr]
        gone = [client.get(revoked)]
        used = invite(portal, "ursula")
        with portal.db.session() as s:
            s.get(Invitation, the_id(portal, "ursula")).status = "used"  # type: ignore[union-attr]
        finished = client.get(used)
        expired = invite(portal, "eve")
        real_clock = portal.clock
        portal.clock = lambda: real_clock() + timedelta(hours=73)
        gone.append(client.get(expired))
        # The form's answer comes after a redirect, at the landing page's address.
        post = client.post(
            expired, data={"csrf_token": csrf_of(unknown.text)}, follow_redirects=False
        )
        assert post.status_code == 303 and post.headers["location"] == expired
        gone.append(client.get(post.headers["location"]))
    assert {r.status_code for r in [unknown, finished, *gone]} == {404}
    assert len({main_of(r.text) for r in gone}) == 1
    assert UNUSABLE in unescape(gone[0].text)
    assert "This link does not work" in unknown.text
    assert "cut short, mistyped, or replaced by a newer one" in unknown.text
    assert "ask for" not in unknown.text.lower() or UNUSABLE not in unescape(unknown.text)
    assert "You already set up your sign-in" in finished.text
    assert "Sign in to the AWS console" in finished.text
    assert "for a new one" not in finished.text  # a finished enrollment needs no new link


def the_id(portal: Portal, user: str) -> str:
    with portal.db.session() as s:
        return s.scalars(select(Invitation.id).where(Invitation.user_name == user)).one()


def test_landing_and_exchange_are_rate_limited_per_client(newcomer: Newcomer):
    statuses = [newcomer.get("/enroll/" + "y" * 43).status_code for _ in range(31)]
    assert statuses[:30] == [404] * 30
    assert statuses[30] == 429
    assert newcomer.get(newcomer.link_path).status_code == 429


def test_enrollment_pages_need_the_enrollment_session(newcomer: Newcomer):
    assert newcomer.get("/enroll").status_code == 403
    assert newcomer.get("/enroll/done").status_code == 403


# -- the codes ------------------------------------------------------------------------------
def wrong_pair() -> tuple[str, str]:
    return pyotp_pair(pyotp.random_base32(64))


def test_five_wrong_pairs_lock_even_across_a_restart_and_a_right_pair_is_refused(
    newcomer: Newcomer, portal: Portal, iam_client
):
    newcomer.start()
    _page, seed = newcomer.scan()
    for left in (4, 3):
        r = newcomer.verify(*wrong_pair())
        assert r.status_code == 400
        assert f"{left} tries left" in r.text
    # Starting over from the link does not reset the count.
    newcomer.start()
    _page, seed = newcomer.scan()
    for left in (2, 1):
        r = newcomer.verify(*wrong_pair())
        assert r.status_code == 400
        assert re.search(rf"{left} tr(y|ies) left", r.text)
    locked = newcomer.verify(*wrong_pair())
    assert locked.status_code == 403
    assert "locked" in locked.text and "new link" in locked.text

    ended = newcomer.get("/enroll")  # the session that locked is over
    assert ended.status_code == 403 and "session has ended" in ended.text
    code1, code2 = pyotp_pair(seed)  # the right codes, now
    form = {"csrf_token": csrf_of(ended.text), "code1": code1, "code2": code2}
    refused = newcomer.answer(newcomer.post("/enroll/verify", form))
    assert refused.status_code == 403 and "session has ended" in refused.text
    assert mfa_serials(iam_client, "alice") == []
    assert all_virtual_devices(iam_client) == []  # the locked enrollment's device is gone
    inv = the_invitation(portal)
    assert inv.failed_attempts == 5 and inv.locked_at is not None
    assert the_enrollment(portal).seed_encrypted is None
    again = newcomer.get(newcomer.link_path)
    assert again.status_code == 403 and "locked" in again.text


def test_valid_but_not_consecutive_codes_are_refused_without_any_iam_call(
    newcomer: Newcomer, portal: Portal
):
    newcomer.start()
    page, seed = newcomer.scan()
    calls: list[str] = []
    portal.on_iam_call = calls.append
    now_step = int(time.time()) // 30
    totp = pyotp.TOTP(seed)
    code1, code3 = totp.at((now_step - 1) * 30), totp.at((now_step + 1) * 30)
    form = {"csrf_token": csrf_of(page.text), "code1": code1, "code2": code3}
    r = newcomer.answer(newcomer.post("/enroll/verify", form))
    assert r.status_code == 400
    assert r.text.count("not one right after the other") == 1  # said once, tries left within
    assert "4 tries left." in r.text
    assert "Tries left" not in r.text  # the hint would say it a second time
    assert calls == []


def test_codes_from_a_phone_with_a_wrong_clock_say_by_how_much(newcomer: Newcomer):
    newcomer.start()
    _page, seed = newcomer.scan()
    r = newcomer.verify(*pyotp_pair(seed, first_offset=-10))  # five minutes behind
    assert r.status_code == 400
    assert "clock looks off by about 5 minutes" in r.text


def test_a_pair_accepted_once_is_refused_the_second_time(
    newcomer: Newcomer, portal: Portal, iam_client
):
    newcomer.start()
    _page, seed = newcomer.scan()
    pair = pyotp_pair(seed)

    def throttle(operation: str) -> None:
        if operation == "EnableMFADevice":
            raise Throttled("AWS is throttling the portal's requests right now.")

    portal.on_iam_call = throttle
    first = newcomer.verify(*pair)  # accepted locally; AWS fails, so the device stays unbound
    assert first.status_code == 400 and "throttling" in first.text
    calls: list[str] = []
    portal.on_iam_call = calls.append
    second = newcomer.verify(*pair)
    assert second.status_code == 400
    assert "already used" in second.text
    assert "EnableMFADevice" not in calls
    assert the_invitation(portal).failed_attempts == 0  # neither counts as a guess
    # The next pair of fresh codes still works.
    third = newcomer.verify(*pyotp_pair(seed, first_offset=1))
    assert third.status_code == 303, third.text
    assert len(mfa_serials(iam_client, "alice")) == 1


def test_a_format_mistake_is_shown_under_its_field_and_costs_no_try(
    newcomer: Newcomer, portal: Portal
):
    newcomer.start()
    newcomer.scan()
    r = newcomer.verify("12345", "123456")
    assert r.status_code == 400
    assert 'id="f-code1-error"' in r.text and "6 digits" in r.text
    assert the_invitation(portal).failed_attempts == 0


def test_aws_refusing_the_codes_counts_as_a_try(newcomer: Newcomer, portal: Portal, iam_client):
    newcomer.start()
    _page, seed = newcomer.scan()
    # The portal's clock runs five minutes ahead of AWS's: codes right for the portal are
    # wrong for AWS, which answers InvalidAuthenticationCode.
    real_clock = portal.clock
    portal.clock = lambda: real_clock() + timedelta(minutes=5)
    r = newcomer.verify(*pyotp_pair(seed, first_offset=10))
    assert r.status_code == 400
    assert "AWS did not accept these codes" in r.text
    assert the_invitation(portal).failed_attempts == 1
    assert mfa_serials(iam_client, "alice") == []


# -- the device -----------------------------------------------------------------------------
def test_a_leftover_unassigned_device_never_reaches_the_person(
    newcomer: Newcomer, portal: Portal, iam_client
):
    # Left by an abandoned attempt, under the portal's device path.
    leftover = iam_client.create_virtual_mfa_device(
        VirtualMFADeviceName="alice", Path="/iam-onboard/"
    )
    old_seed = leftover["VirtualMFADevice"]["Base32StringSeed"].decode()
    newcomer.start()
    page, seed = newcomer.scan()
    assert "already exists" not in page.text
    assert seed != old_seed
    r = newcomer.verify(*pyotp_pair(seed))
    assert r.status_code == 303
    assert mfa_serials(iam_client, "alice") == ["arn:aws:iam::123456789012:mfa/iam-onboard/alice"]
    assert all_virtual_devices(iam_client) == ["arn:aws:iam::123456789012:mfa/iam-onboard/alice"]


def test_an_unassigned_device_outside_the_portals_path_is_left_alone(
    newcomer: Newcomer, portal: Portal, iam_client
):
    # Someone's own device, made by hand with the same name: not the portal's to delete.
    iam_client.create_virtual_mfa_device(VirtualMFADeviceName="alice")
    newcomer.start()
    _page, seed = newcomer.scan()
    assert newcomer.verify(*pyotp_pair(seed)).status_code == 303
    assert mfa_serials(iam_client, "alice") == ["arn:aws:iam::123456789012:mfa/iam-onboard/alice"]
    assert sorted(all_virtual_devices(iam_client)) == [
        "arn:aws:iam::123456789012:mfa/alice",
        "arn:aws:iam::123456789012:mfa/iam-onboard/alice",
    ]


def test_coming_back_within_ten_minutes_shows_the_same_device_after_them_a_new_one(
    newcomer: Newcomer, portal: Portal, iam_client
):
    real_clock = portal.clock
    newcomer.start()
    _page, seed1 = newcomer.scan()
    portal.clock = lambda: real_clock() + timedelta(minutes=5)
    newcomer.start()  # the link again, e.g. from another tab
    _page, seed2 = newcomer.scan()
    assert seed2 == seed1

    portal.clock = lambda: real_clock() + timedelta(minutes=11)
    expired = newcomer.get("/enroll")
    assert expired.status_code == 200
    assert seed1 not in expired.text and "ran out" in expired.text
    restart = newcomer.post("/enroll/restart", {"csrf_token": csrf_of(expired.text)})
    assert restart.status_code == 303 and restart.headers["location"] == "/enroll"
    _page, seed3 = newcomer.scan()
    assert seed3 != seed1
    assert len(all_virtual_devices(iam_client)) == 1  # the old one was deleted

    # Reopening the link after the time ran out also gives a new device.
    portal.clock = lambda: real_clock() + timedelta(minutes=22)
    newcomer.start()
    _page, seed4 = newcomer.scan()
    assert seed4 not in (seed1, seed3)
    assert len(all_virtual_devices(iam_client)) == 1


def test_housekeeping_wipes_expired_seeds_devices_and_links(
    newcomer: Newcomer, portal: Portal, iam_client
):
    real_clock = portal.clock
    newcomer.start()
    newcomer.scan()
    assert enrollment_service.expire_enrollments(portal) == 0
    portal.clock = lambda: real_clock() + timedelta(minutes=11)
    assert enrollment_service.expire_enrollments(portal) == 1
    enr = the_enrollment(portal)
    assert enr.status == "expired" and enr.seed_encrypted is None
    assert all_virtual_devices(iam_client) == []
    assert the_invitation(portal).status == "pending"
    portal.clock = lambda: real_clock() + timedelta(hours=73)
    assert enrollment_service.expire_enrollments(portal) == 1
    assert the_invitation(portal).status == "expired"


# -- the seed and other secrets -------------------------------------------------------------
def test_the_seed_is_only_encrypted_in_the_database_and_gone_afterwards(
    newcomer: Newcomer, portal: Portal
):
    newcomer.start()
    _page, seed = newcomer.scan()
    enr = the_enrollment(portal)
    assert enr.seed_encrypted is not None
    box = SecretBox(portal.settings.secret_key, purpose="mfa-seed")
    assert box.decrypt(enr.seed_encrypted, bound_to=f"enrollment:{enr.id}") == seed
    assert seed.encode() not in db_bytes(portal)
    assert all(seed not in value for value in newcomer.client.cookies.values())

    newcomer.verify(*pyotp_pair(seed))
    enr = the_enrollment(portal)
    assert enr.seed_encrypted is None
    password = password_of(newcomer.get("/enroll/done").text)
    raw = db_bytes(portal)
    assert seed.encode() not in raw
    assert password.encode() not in raw
    assert all(seed not in u and password not in u for u in newcomer.urls)
    assert all(seed not in v for v in newcomer.client.cookies.values())


def secrets_in_logs(
    caplog: pytest.LogCaptureFixture, seed: str, codes: tuple[str, str], password: str, token: str
) -> list[str]:
    forms = {
        seed,
        base64.b64encode(seed.encode()).decode(),  # how the seed travels in IAM's XML
        password,
        token,
        *(f"'{c}'" for c in codes),
        *(f"={c}" for c in codes),
    }
    lines = [f"{r.name}: {r.getMessage()}" for r in caplog.records]
    return [line[:160] for line in lines if any(f in line for f in forms)]


@contextmanager
def logger_levels(**levels: int) -> Iterator[None]:
    """Set loggers' own levels; caplog.set_level(logger=...) would also raise its handler's."""
    loggers = {name: logging.getLogger(name.replace("_", ".")) for name in levels}
    before = {name: lg.level for name, lg in loggers.items()}
    for name, lg in loggers.items():
        lg.setLevel(levels[name])
    try:
        yield
    finally:
        for name, lg in loggers.items():
            lg.setLevel(before[name])


# The newcomer's own HTTP client logs the URLs it fetches; that is not the portal's log.
CLIENT_SIDE = {"httpx": logging.WARNING, "httpcore": logging.WARNING}


def test_the_portal_logs_no_seed_code_password_or_token(
    newcomer: Newcomer, caplog: pytest.LogCaptureFixture
):
    # Every logger at DEBUG except botocore's body dumps (see the next test).
    caplog.set_level(logging.DEBUG)
    with logger_levels(botocore=logging.INFO, urllib3=logging.INFO, **CLIENT_SIDE):
        _, seed, codes, password = run_journey(newcomer)
    assert any(r.name == "iam_onboard.http" for r in caplog.records)  # the capture did capture
    assert secrets_in_logs(caplog, seed, codes, password, newcomer.token) == []


def test_no_log_line_holds_a_secret_even_with_everything_at_debug(
    newcomer: Newcomer, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    with logger_levels(**CLIENT_SIDE):
        _, seed, codes, password = run_journey(newcomer)
    assert secrets_in_logs(caplog, seed, codes, password, newcomer.token) == []


def run_journey(person: Newcomer) -> tuple[str, str, tuple[str, str], str]:
    person.start()
    page, seed = person.scan()
    codes = pyotp_pair(seed)
    assert person.verify(*codes).status_code == 303
    return page.text, seed, codes, password_of(person.get("/enroll/done").text)


# -- failures midway and double submits -----------------------------------------------------
def test_a_failure_after_mfa_is_bound_is_finished_by_a_retry(
    newcomer: Newcomer, portal: Portal, iam_client
):
    newcomer.start()
    _page, seed = newcomer.scan()

    def throttle(operation: str) -> None:
        if operation == "CreateLoginProfile":
            raise Throttled("AWS is throttling the portal's requests right now.")

    portal.on_iam_call = throttle
    r = newcomer.verify(*pyotp_pair(seed))
    assert r.status_code == 503
    assert "Your MFA device is set up" in r.text and "/enroll/finish" in r.text
    assert len(mfa_serials(iam_client, "alice")) == 1
    assert the_invitation(portal).status == "pending"
    assert newcomer.get("/enroll").text.count('action="/enroll/finish"') == 1

    portal.on_iam_call = None
    page = newcomer.get("/enroll")
    finished = newcomer.post("/enroll/finish", {"csrf_token": csrf_of(page.text)})
    assert finished.status_code == 303 and finished.headers["location"] == "/enroll/done"
    assert password_of(newcomer.get("/enroll/done").text)
    assert iam_client.get_login_profile(UserName="alice")["LoginProfile"]["UserName"] == "alice"
    assert the_invitation(portal).status == "used"


@pytest.fixture
def server(portal: Portal) -> Iterator[str]:
    with serve_in_thread(portal) as url:
        yield url


def test_a_double_submitted_form_enables_the_device_once(portal: Portal, server: str, iam_client):
    link = server + invite(portal, extra_groups=["ReadOnly"])
    calls: list[str] = []

    def slow_enable(operation: str) -> None:
        calls.append(operation)
        if operation == "EnableMFADevice":
            time.sleep(0.5)  # the second submit arrives while AWS is still answering

    with httpx.Client(base_url=server) as browser:
        landing = browser.get(link)
        browser.post(link, data={"csrf_token": csrf_of(landing.text)})
        page = browser.get("/enroll")
        seed = secret_of(page.text)
        code1, code2 = pyotp_pair(seed)
        form = {"csrf_token": csrf_of(page.text), "code1": code1, "code2": code2}
        portal.on_iam_call = slow_enable
        barrier = threading.Barrier(2)
        answers: list[httpx.Response] = []

        def submit() -> None:
            barrier.wait()
            answers.append(browser.post("/enroll/verify", data=form))

        threads = [threading.Thread(target=submit) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in answers] == [303, 303], [r.text for r in answers]
        assert {r.headers["location"] for r in answers} == {"/enroll/done"}
        done = browser.get("/enroll/done")
        assert password_of(done.text)
    assert calls.count("EnableMFADevice") == 1
    assert calls.count("CreateLoginProfile") == 1
    assert len(mfa_serials(iam_client, "alice")) == 1
    assert the_enrollment(portal).status == "done"


def test_an_enrollment_lasts_ten_minutes(newcomer: Newcomer, portal: Portal):
    before = datetime.now(UTC)
    newcomer.start()
    enr = the_enrollment(portal)
    assert timedelta(minutes=9) < enr.expires_at - before <= timedelta(minutes=10, seconds=5)


# -- existing IAM users (links sent by an admin to users the portal did not create) ---------
def existing_user_link(portal: Portal, iam_client, *, deadline: bool) -> str:  # type: ignore[no-untyped-def]
    iam_client.create_user(UserName="olga")
    iam_client.create_login_profile(UserName="olga", Password="Her-own-pa55word!")
    token = "existing-user-token-" + "z" * 30
    now = datetime.now(UTC)
    with portal.db.session() as s:
        s.add(
            Invitation(
                user_name="olga", user_name_key="olga", email="olga@example.com",
                token_hash=hash_token(token), status="pending", extra_groups=["ReadOnly"],
                invited_by="boss@example.com", existing_user=True,
                enforce_at=now + timedelta(days=7) if deadline else None,
                created_at=now, expires_at=now + timedelta(hours=72),
            )
        )  # fmt: skip
    return f"/enroll/{token}"


def test_an_existing_user_keeps_their_password_and_a_deadline_joins_the_mfa_group_now(
    portal: Portal, iam_client
):
    with TestClient(create_app(portal)) as client:
        person = Newcomer(client, existing_user_link(portal, iam_client, deadline=True), [])
        person.start()
        _page, seed = person.scan()
        assert person.verify(*pyotp_pair(seed)).status_code == 303
        done = person.get("/enroll/done").text
    assert 'id="temp-password"' not in done
    assert "Enter the password you already use" in done
    profile = iam_client.get_login_profile(UserName="olga")["LoginProfile"]
    assert profile["PasswordResetRequired"] is False  # untouched: still her own password
    groups = {g["GroupName"] for g in iam_client.list_groups_for_user(UserName="olga")["Groups"]}
    assert groups == {"MFA", "ReadOnly"}
    assert mfa_serials(iam_client, "olga") == ["arn:aws:iam::123456789012:mfa/iam-onboard/olga"]


def test_a_bound_device_of_the_same_name_is_never_touched(portal: Portal, iam_client):
    link = existing_user_link(portal, iam_client, deadline=False)
    own = iam_client.create_virtual_mfa_device(VirtualMFADeviceName="olga")["VirtualMFADevice"]
    own_serial = own["SerialNumber"]
    code1, code2 = pyotp_pair(own["Base32StringSeed"].decode())
    iam_client.enable_mfa_device(
        UserName="olga",
        SerialNumber=own_serial,
        AuthenticationCode1=code1,
        AuthenticationCode2=code2,
    )
    with TestClient(create_app(portal)) as client:
        person = Newcomer(client, link, [])
        person.start()
        page, seed = person.scan()
        assert person.verify(*pyotp_pair(seed)).status_code == 303
    serials = mfa_serials(iam_client, "olga")
    assert own_serial in serials and len(serials) == 2
    assert [s for s in serials if s != own_serial] == [
        "arn:aws:iam::123456789012:mfa/iam-onboard/olga"
    ]


def test_when_aws_cannot_create_the_device_the_person_can_try_again(
    newcomer: Newcomer, portal: Portal
):
    def throttle(operation: str) -> None:
        if operation == "CreateVirtualMFADevice":
            raise Throttled("AWS is throttling the portal's requests right now.")

    portal.on_iam_call = throttle
    landing = newcomer.get(newcomer.link_path)
    failed = newcomer.answer(
        newcomer.post(newcomer.link_path, {"csrf_token": csrf_of(landing.text)})
    )
    assert failed.status_code == 503
    assert "could not be created" in failed.text and 'action="/enroll/restart"' in failed.text
    portal.on_iam_call = None
    again = newcomer.post("/enroll/restart", {"csrf_token": csrf_of(failed.text)})
    assert again.status_code == 303 and again.headers["location"] == "/enroll"
    _page, seed = newcomer.scan()
    assert newcomer.verify(*pyotp_pair(seed)).status_code == 303

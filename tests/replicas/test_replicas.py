"""Two `iam-onboard serve` processes on one PostgreSQL database, as behind a load balancer.

Nothing a second replica needs may live in one process's memory: sessions, enrollments,
tries, rate limits, admin lockouts and the housekeeping lease are all in the database.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest

from app.config import Settings
from app.sandbox import Sandbox
from app.services import admins
from app.services.bootstrap import bootstrap
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Portal
from tests.conftest import make_portal
from tests.faultproxy import HOLD, FaultProxy
from tests.faults.conftest import has_login_profile, mfa_devices_of
from tests.faults.server import Server, running_servers, server_env
from tests.helpers import CLI, csrf_of

BASE_URL = "http://portal.test"  # both replicas build links from the same configured address
ADMIN = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"


@dataclass
class Replicas:
    a: Server
    b: Server
    portal: Portal  # the same database, for what the admin does from the command line
    database_url: str

    def invite(self, name: str) -> str:
        result = invite_user(
            self.portal, user_name=name, email=f"{name}@example.com", actor=CLI_ACTOR
        )
        return urlsplit(result.link).path


@pytest.fixture
def replicas(aws: Sandbox, postgres_url: str, tmp_path: Path) -> Iterator[Replicas]:
    portal = make_portal(aws, postgres_url)
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    try:
        with running_servers(
            2,
            database_url=postgres_url,
            iam_url=aws.url,
            base_url=BASE_URL,
            log=tmp_path / "replica.log",
        ) as (a, b):
            yield Replicas(a, b, portal, postgres_url)
    finally:
        portal.db.dispose()


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    """One person's browser: one cookie jar, sent to whichever replica answers."""
    with httpx.Client(timeout=30) as client:
        yield client


def open_scan_page(browser: httpx.Client, server: Server, link_path: str) -> tuple[str, str]:
    """Landing, exchange and scan page on one replica; returns (scan page, secret)."""
    landing = browser.get(server.url + link_path)
    assert landing.status_code == 200, landing.text
    started = browser.post(server.url + link_path, data={"csrf_token": csrf_of(landing.text)})
    assert started.status_code == 303, started.text
    scan = browser.get(server.url + "/enroll")
    assert scan.status_code == 200, scan.text
    found = re.search(r'id="secret" data-copy-value="([A-Z2-7]+)"', scan.text)
    assert found, scan.text
    return scan.text, found.group(1)


def test_an_enrollment_started_on_one_replica_finishes_on_the_other(
    replicas: Replicas, browser: httpx.Client, iam_client: Any
):
    a, b = replicas.a, replicas.b
    scan, secret = open_scan_page(browser, a, replicas.invite("carol"))
    again = browser.get(b.url + "/enroll")  # the same session, the same device, on B
    assert again.status_code == 200 and secret in again.text
    totp, now = pyotp.TOTP(secret), int(time.time()) // 30
    form = {
        "csrf_token": csrf_of(again.text),
        "code1": totp.generate_otp(now - 1),
        "code2": totp.generate_otp(now),
    }
    verified = browser.post(b.url + "/enroll/verify", data=form)
    assert verified.status_code == 303 and verified.headers["location"] == "/enroll/done"
    done = browser.get(b.url + "/enroll/done")
    assert done.status_code == 200 and 'id="temp-password"' in done.text
    # The done page is shown once across both: a reload that lands on A shows no password.
    reload = browser.get(a.url + "/enroll/done")
    assert reload.status_code == 200
    assert 'id="temp-password"' not in reload.text
    assert "already shown once" in reload.text
    assert len(mfa_devices_of(iam_client, "carol")) == 1
    assert has_login_profile(iam_client, "carol")


def test_the_enrollment_lockout_counts_wrong_codes_on_both_replicas(
    replicas: Replicas, browser: httpx.Client
):
    link = replicas.invite("bob")
    scan, _secret = open_scan_page(browser, replicas.a, link)
    wrong = {"csrf_token": csrf_of(scan), "code1": "000000", "code2": "000001"}
    servers = [replicas.b, replicas.a] * 3
    for attempt in range(1, 5):
        r = _answer(browser, browser.post(servers[attempt - 1].url + "/enroll/verify", data=wrong))
        assert r.status_code == 400, r.text
        left = 5 - attempt
        assert f"{left} {'try' if left == 1 else 'tries'} left" in r.text
    locked = _answer(browser, browser.post(servers[4].url + "/enroll/verify", data=wrong))
    assert locked.status_code == 403 and "locked after 5 wrong tries" in locked.text
    for server in (replicas.a, replicas.b):
        page = browser.get(server.url + link)
        assert page.status_code == 403 and "This link is locked" in page.text


def test_the_link_rate_limit_counts_requests_on_both_replicas(replicas: Replicas):
    limit = Settings.model_fields["enroll_rate_limit_per_minute"].default  # what both run with
    servers = [replicas.a, replicas.b]
    with httpx.Client(timeout=30) as client:
        statuses = [
            client.get(servers[i % 2].url + "/enroll/no-such-link-0123456789").status_code
            for i in range(limit + 2)
        ]
    # Every address gets `limit` link openings a minute in all, whichever replica counts them.
    assert statuses[:limit] == [404] * limit
    assert statuses[limit:] == [429, 429]


def test_housekeeping_runs_on_one_replica_at_a_time(replicas: Replicas, aws: Sandbox):
    proxy = FaultProxy(aws.url)
    env = server_env(database_url=replicas.database_url, iam_url=proxy.url, base_url=BASE_URL)
    command = [*CLI, "housekeeping"]
    try:
        # The first run waits at its first IAM call, holding the lease, while the second runs.
        proxy.inject(HOLD, action="ListVirtualMFADevices", times=1)
        first = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            assert proxy.held.wait(60), "the first housekeeping run never reached IAM"
            second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            proxy.release()  # the held call drops; botocore's retry goes through
            first_out, _ = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert second.returncode == 0, second.stderr
        assert "Another replica is running housekeeping" in second.stdout
        assert first.returncode == 0, first_out
        assert "Another replica" not in first_out and "device(s) deleted" in first_out
        # The lease is given back at the end: the next run runs.
        third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert third.returncode == 0 and "Another replica" not in third.stdout, third.stdout
    finally:
        proxy.stop()


def _set_up_admin(portal: Portal) -> None:
    setup = admins.create_admin(portal, email=ADMIN, actor=CLI_ACTOR)
    token = setup.link.rsplit("/", 1)[1]
    info = admins.set_setup_password(
        portal, token=token, password=ADMIN_PASSWORD, password_confirm=ADMIN_PASSWORD
    )
    pending = admins.new_pending_seed(portal, admin_id=info.admin_id, token=token)
    shown = admins.totp_setup(portal, admin_id=info.admin_id, email=ADMIN, pending_seed=pending)
    totp, now = pyotp.TOTP(shown.secret_grouped.replace(" ", "")), int(time.time()) // 30
    admins.finish_totp_setup(
        portal,
        admin_id=info.admin_id,
        pending_seed=pending,
        code1=totp.generate_otp(now - 1),
        code2=totp.generate_otp(now),
    )


def _sign_in(browser: httpx.Client, server: Server, password: str) -> httpx.Response:
    page = browser.get(server.url + "/admin/sign-in")
    form = {"csrf_token": csrf_of(page.text), "email": ADMIN, "password": password, "next": ""}
    r = browser.post(server.url + "/admin/sign-in", data=form)
    return _answer(browser, r) if r.headers.get("location") == "/admin/sign-in" else r


def _answer(browser: httpx.Client, r: httpx.Response) -> httpx.Response:
    """The page answering a form: the GET its 303 leads to (Post/Redirect/Get)."""
    assert r.status_code == 303, r.text
    return browser.get(r.url.join(r.headers["location"]))


def test_an_admin_locked_on_one_replica_is_locked_on_the_other(
    replicas: Replicas, browser: httpx.Client
):
    _set_up_admin(replicas.portal)
    servers = [replicas.a, replicas.b] * 5
    for attempt, server in enumerate(servers[: admins.LOCK_THRESHOLD - 1], start=1):
        r = _sign_in(browser, server, f"wrong password {attempt}")
        assert r.status_code == 400 and "do not match" in r.text, r.text
    tenth = _sign_in(browser, servers[admins.LOCK_THRESHOLD - 1], "wrong password 10")
    assert tenth.status_code == 429 and "locked" in tenth.text
    # Even the right password opens nothing now, on either replica.
    for server in (replicas.a, replicas.b):
        r = _sign_in(browser, server, ADMIN_PASSWORD)
        assert r.status_code == 429 and "locked" in r.text, r.text
        assert "location" not in r.headers

"""50 new hires enroll at the same moment through the real server; a form sent twice at once.

Runs on SQLite, and on PostgreSQL when IAM_ONBOARD_TEST_POSTGRES_URL is set (CI sets it).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest

from app.sandbox import Sandbox
from app.services.bootstrap import bootstrap
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Portal
from tests.conftest import make_portal
from tests.faultproxy import FaultProxy
from tests.faults.conftest import mfa_devices_of, unassigned_devices, users
from tests.faults.server import Server, running_server
from tests.helpers import csrf_of

HIRES = 50


@dataclass
class Visit:
    """One person's browser: its own cookie jar, and every page it was shown."""

    client: httpx.Client
    name: str
    pages: list[str] = field(default_factory=list)
    secret: str | None = None
    password: str | None = None
    error: str | None = None

    def get(self, path: str) -> httpx.Response:
        r = self.client.get(path)
        self.pages.append(r.text)
        return r

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        r = self.client.post(path, data=data)
        self.pages.append(r.text)
        return r


def secret_of(page: str) -> str:
    found = re.search(r'id="secret" data-copy-value="([A-Z2-7]+)"', page)
    assert found, "no secret on the page"
    return found.group(1)


def codes(seed: str) -> tuple[str, str]:
    """The code shown a moment ago and the one shown now, as a person types them."""
    totp, now = pyotp.TOTP(seed), int(time.time()) // 30
    return totp.generate_otp(now - 1), totp.generate_otp(now)


def open_scan_page(visit: Visit, link_path: str) -> str:
    """Landing page, the exchange (a POST), then the scan page; returns the scan page."""
    landing = visit.get(link_path)
    assert landing.status_code == 200, landing.text
    started = visit.post(link_path, {"csrf_token": csrf_of(landing.text)})
    assert started.status_code == 303 and started.headers["location"] == "/enroll", started.text
    scan = visit.get("/enroll")
    assert scan.status_code == 200, scan.text
    visit.secret = secret_of(scan.text)
    return scan.text


def enroll(visit: Visit, link_path: str) -> None:
    scan = open_scan_page(visit, link_path)
    assert visit.secret is not None
    code1, code2 = codes(visit.secret)
    verified = visit.post(
        "/enroll/verify", {"csrf_token": csrf_of(scan), "code1": code1, "code2": code2}
    )
    assert verified.status_code == 303, verified.text
    assert verified.headers["location"] == "/enroll/done"
    done = visit.get("/enroll/done")
    assert done.status_code == 200, done.text
    found = re.search(r'id="temp-password">([^<]+)<', done.text)
    assert found, done.text
    visit.password = found.group(1)


@dataclass
class Setup:
    portal: Portal
    proxy: FaultProxy
    server: Server


@pytest.fixture
def setup(aws: Sandbox, database_url: str, tmp_path: Path) -> Iterator[Setup]:
    """The real server on the sandbox (through a counting proxy) and the chosen database."""
    proxy = FaultProxy(aws.url)
    portal = make_portal(aws, database_url, endpoint=proxy.url)
    try:
        bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
        with running_server(
            database_url=database_url,
            iam_url=proxy.url,
            log=tmp_path / "server.log",
            IAM_ONBOARD_TRUSTED_PROXIES="127.0.0.1",  # as behind a load balancer
        ) as server:
            yield Setup(portal, proxy, server)
    finally:
        portal.db.dispose()
        proxy.stop()


def _invite(portal: Portal, name: str) -> str:
    result = invite_user(portal, user_name=name, email=f"{name}@example.com", actor=CLI_ACTOR)
    return urlsplit(result.link).path


def test_fifty_new_hires_enroll_at_once_and_none_sees_another_ones_secret(
    setup: Setup, iam_client: Any
):
    names = [f"hire{i:02d}" for i in range(HIRES)]
    links = {name: _invite(setup.portal, name) for name in names}
    start = threading.Barrier(HIRES)
    visits: list[Visit] = []

    def person(index: int, name: str) -> None:
        # Each from a network of its own (the server trusts X-Forwarded-For from loopback,
        # as behind a load balancer): the per-address rate limit is not what is tested here.
        client = httpx.Client(
            base_url=setup.server.url,
            timeout=120,
            headers={"X-Forwarded-For": f"198.51.100.{index + 1}"},
        )
        visit = Visit(client, name)
        visits.append(visit)
        try:
            start.wait(timeout=60)
            enroll(visit, links[name])
        except Exception as exc:  # reported below, with the person's name
            visit.error = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()

    threads = [threading.Thread(target=person, args=(i, n)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    failed = {v.name: v.error for v in visits if v.error}
    assert not failed, f"{len(failed)} of {HIRES} failed: {failed}\n{setup.server.output()[-3000:]}"
    assert len(visits) == HIRES

    secrets = {v.name: v.secret for v in visits}
    assert len(set(secrets.values())) == HIRES  # every device its own seed
    for visit in visits:
        others = [s for n, s in secrets.items() if n != visit.name and s]
        for page in visit.pages:
            leaked = [s for s in others if s in page]
            assert not leaked, f"{visit.name} was shown another person's secret"
        assert visit.password and all(
            visit.password not in p for p in _pages_of_others(visits, visit)
        )

    # The sandbox checks each code pair against the device's own seed, as AWS does: a device
    # bound to a user proves that user typed codes from the secret they were shown.
    assert users(iam_client) == sorted(names)
    for name in names:
        serials = mfa_devices_of(iam_client, name)
        assert len(serials) == 1 and serials[0].endswith(f":mfa/iam-onboard/{name}"), (
            name,
            serials,
        )
    assert unassigned_devices(iam_client) == []
    assert setup.proxy.count("EnableMFADevice") == HIRES
    assert "Traceback" not in setup.server.output()  # no request ended in a server error


def _pages_of_others(visits: list[Visit], me: Visit) -> Iterator[str]:
    for visit in visits:
        if visit is not me:
            yield from visit.pages


def test_the_codes_form_sent_twice_at_once_enables_the_device_once(setup: Setup, iam_client: Any):
    link = _invite(setup.portal, "zed")
    first = httpx.Client(base_url=setup.server.url, timeout=60)
    try:
        scan = open_scan_page(Visit(first, "zed"), link)
        secret = secret_of(scan)
        code1, code2 = codes(secret)
        form = {"csrf_token": csrf_of(scan), "code1": code1, "code2": code2}
        # A second tab of the same browser: the same session cookie.
        second = httpx.Client(base_url=setup.server.url, timeout=60, cookies=first.cookies)
        together = threading.Barrier(2)
        answers: list[httpx.Response] = []

        def submit(client: httpx.Client) -> None:
            together.wait(timeout=30)
            answers.append(client.post("/enroll/verify", data=form))

        threads = [threading.Thread(target=submit, args=(c,)) for c in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(answers) == 2
        # Both end where a person expects: the done page (the second one follows the first).
        assert [(a.status_code, a.headers.get("location")) for a in answers] == [
            (303, "/enroll/done")
        ] * 2, [a.text[:500] for a in answers]
        shown = [first.get("/enroll/done"), second.get("/enroll/done")]
        assert all(page.status_code == 200 for page in shown)
        with_password = [p for p in shown if 'id="temp-password"' in p.text]
        assert len(with_password) == 1  # the password is shown once, in one tab
        second.close()
    finally:
        first.close()
    assert setup.proxy.count("EnableMFADevice") == 1
    assert "Traceback" not in setup.server.output()
    assert len(mfa_devices_of(iam_client, "zed")) == 1
    assert unassigned_devices(iam_client) == []

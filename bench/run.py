"""Benchmarks: what people wait for (issue 16). Run with `make bench` (a few minutes).

1. the new hire's journey at 80 ms per IAM call, as a browser sees it, ÷ the sequential IAM floor;
2. bulk API invitations under a 10 call/s account bucket ÷ the best that bucket allows;
3. the server's own CPU time per journey;
4. IAM calls per dashboard refresh; dashboard page and refresh at 5,000 users ÷ at 50; the enroll
   landing page under wrk ÷ a bare FastAPI endpoint; peak server memory at 5,000 users.

Ratios are measured within one run, so a noisy shared machine moves both sides alike. Nothing
here is a test: it measures and prints, and ends with `name: value` lines for scripts.
`--only SECTION` runs one section.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import httpx  # noqa: E402
import pyotp  # noqa: E402

from app.aws.client import client_config  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.sandbox import SANDBOX_CREDENTIALS, Sandbox, start_sandbox  # noqa: E402
from app.sandbox.data import populate  # noqa: E402
from app.sandbox.realism import RealismSettings  # noqa: E402
from app.services import directory  # noqa: E402
from app.services.api_tokens import create_api_token  # noqa: E402
from app.services.bootstrap import bootstrap  # noqa: E402
from app.services.portal import CLI_ACTOR, Portal, build_portal  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402

SECRET = "bench-secret-" + "b" * 40
LATENCY_MS = 80
BULK_RATE = 10
# The longest chain of IAM calls of the journey where each needs the one before: the user
# exists before it joins the MFA group, and the link goes out only once it is in (so the
# device comes after); MFA is enabled on the created device, and the console password only
# once MFA is on (docs/architecture.md, "The life of an enrollment").
FLOOR_CHAIN = (
    "CreateUser",
    "AddUserToGroup",
    "CreateVirtualMFADevice",
    "EnableMFADevice",
    "CreateLoginProfile",
)
# What an invitation needs at the least: the user, and its place in the MFA group.
CALLS_PER_INVITATION = 2

summary: dict[str, str] = {}
SUMMARY_ORDER = (
    "journey_vs_floor",
    "bulk_vs_best",
    "refresh_calls_5000",
    "page_5000_vs_50",
    "landing_vs_bare",
    "peak_rss_mib",
    "server_cpu_ms_per_journey",
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str) -> None:
    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not come up")


def make_portal(endpoint: str, db: str, **settings: Any) -> Portal:
    values = {
        "secret_key": SECRET,
        "database_url": db,
        "base_url": "http://127.0.0.1:9",
        "housekeeping_interval_seconds": 0,
        **settings,
    }
    return build_portal(load_settings(**values), endpoint=endpoint)


# -- processes: a sandbox of its own, the portal's `serve` ------------------------------------
@contextmanager
def sandbox_process(**realism: float) -> Iterator[str]:
    """A sandbox in its own process (its own GIL), with realism modes from the environment."""
    names = {
        "latency_ms": "IAM_ONBOARD_SANDBOX_LATENCY_MS",
        "rate": "IAM_ONBOARD_SANDBOX_RATE",
        "burst": "IAM_ONBOARD_SANDBOX_BURST",
    }
    env = {**os.environ, **{names[k]: str(v) for k, v in realism.items()}}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.sandbox.data"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def serve(db: str, endpoint: str, **extra: str) -> Iterator[tuple[str, int]]:
    """`iam-onboard serve` in its own process; yields its address and pid."""
    port = free_port()
    env = {
        **os.environ,
        "IAM_ONBOARD_SECRET_KEY": SECRET,
        "IAM_ONBOARD_DATABASE_URL": db,
        "AWS_ENDPOINT_URL_IAM": endpoint,
        "AWS_ENDPOINT_URL_STS": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "IAM_ONBOARD_HOUSEKEEPING_INTERVAL_SECONDS": "0",
        "IAM_ONBOARD_BASE_URL": f"http://127.0.0.1:{port}",
        "IAM_ONBOARD_LOG_LEVEL": "WARNING",
        "IAM_ONBOARD_ASSIGNABLE_GROUPS": "Developers",
        # One client makes every journey: the per-address limit on link openings would stop it.
        "IAM_ONBOARD_ENROLL_RATE_LIMIT_PER_MINUTE": "100000000",
        **extra,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env, cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + "/healthz")
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class TimingProxy(FaultProxy):
    """The tests' counting proxy, also noting when each IAM call reached it and when its
    answer had gone back: the time a call costs the portal, this hop included.

    The hop's own work on both sides (reading the portal's request, writing IAM's answer back)
    is inside that window: timed from the request line to the last byte of the answer, not
    only around the forwarding, so none of the harness's time is charged to the portal.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.timeline: list[tuple[str, float, float]] = []
        self._action = threading.local()
        proxy = self
        handler: Any = self.server.RequestHandlerClass

        class Timed(handler):  # type: ignore[misc]
            def parse_request(self) -> bool:
                self.began = time.perf_counter()  # the request line has just been read
                return bool(super().parse_request())

            def do_POST(self) -> None:  # noqa: N802
                super().do_POST()  # unbuffered: the answer has been written when it returns
                with proxy._lock:
                    proxy.timeline.append((proxy._action.name, self.began, time.perf_counter()))

        self.server.RequestHandlerClass = Timed

    def _pick(self, action: str) -> str | None:
        self._action.name = action
        return super()._pick(action)


def prepare_account(endpoint: str, db: str) -> str:
    """Bootstrap the account (MFA group, policies), add Developers; returns an API token."""
    portal = make_portal(endpoint, db, assignable_groups=["Developers"])
    try:
        bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
        portal.iam().create_group("Developers")
        return create_api_token(portal, name="bench")
    finally:
        portal.db.dispose()


# -- 1 + 3. the new hire's journey, as a browser makes it -------------------------------------
_ASSET = re.compile(r'<(?:link[^>]+href|script[^>]+src|img[^>]+src)="(/[^"]+)"')
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """An HTTP client making the requests a browser makes: redirects, cookies, and each page's
    stylesheets, scripts and images (once each per person, as a browser caches them).

    As a browser does, a page's assets are fetched at the same time, over several connections,
    and the page counts as ready once they have all arrived (the favicon is inside the page, a
    data: URI). httpx.Client is thread-safe and pools its connections.

    Made once and reused, with its cookies cleared for each new hire: building an httpx
    client costs tens of milliseconds (its TLS context), which no browser pays per page.
    """

    # Browsers open up to six connections per host (HTTP/1.1).
    CONNECTIONS = 6

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=60, follow_redirects=True)
        self.cached: set[str] = set()
        self.pool = ThreadPoolExecutor(self.CONNECTIONS, thread_name_prefix="browser")

    def new_person(self) -> None:
        self.client.cookies.clear()
        self.cached.clear()

    def page(self, response: httpx.Response) -> str:
        response.raise_for_status()
        assets = [a for a in dict.fromkeys(_ASSET.findall(response.text)) if a not in self.cached]
        self.cached.update(assets)
        for fetched in self.pool.map(self.client.get, assets):
            fetched.raise_for_status()
        return response.text

    def get(self, path: str) -> str:
        return self.page(self.client.get(path))

    def post(self, path: str, data: dict[str, str]) -> tuple[str, str]:
        response = self.client.post(path, data=data)
        return self.page(response), str(response.url)

    def close(self) -> None:
        self.pool.shutdown()
        self.client.close()


class Journey:
    """The API client of the HR system and the new hire's browser, kept between journeys."""

    def __init__(self, base: str, api_token: str) -> None:
        self.base = base
        self.api = httpx.Client(
            base_url=base, timeout=60, headers={"Authorization": f"Bearer {api_token}"}
        )
        self.browser = Browser(base)

    def close(self) -> None:
        self.api.close()
        self.browser.close()

    def run(self, user: str) -> None:
        """Invite through the API (as the HR system would), then the new hire's browser: the
        link, Start, the QR page, two codes, the done page with the console password."""
        r = self.api.post(
            "/api/v1/invitations",
            json={"user_name": user, "email": f"{user}@example.com", "groups": ["Developers"]},
        )
        r.raise_for_status()
        link = r.json()["link"]
        browser = self.browser
        browser.new_person()
        landing = browser.get(urljoin(self.base, link))
        csrf = _CSRF.search(landing)
        assert csrf, "no form on the landing page"
        scan, _url = browser.post(
            "/enroll/" + link.rsplit("/", 1)[1], {"csrf_token": csrf.group(1)}
        )
        secret = re.search(r'data-copy-value="([A-Z2-7]+)"', scan)
        csrf = _CSRF.search(scan)
        assert secret and csrf, "no secret on the scan page"
        totp = pyotp.TOTP(secret.group(1))
        now = time.time()
        done, url = browser.post(
            "/enroll/verify",
            {"csrf_token": csrf.group(1), "code1": totp.at(now - 30), "code2": totp.at(now)},
        )
        assert url.endswith("/enroll/done"), done[:500]


def longest_chain(calls: list[tuple[str, float, float]]) -> list[int]:
    """The longest run of calls each starting after the one before ended: the calls the
    portal made one after another (indexes into `calls`, sorted by start)."""
    best: list[list[int]] = []
    for i, (_a, started, _e) in enumerate(calls):
        before = [best[j] for j in range(i) if calls[j][2] <= started]
        best.append([*max(before, key=len, default=[]), i])
    return max(best, key=len, default=[])


def bench_journey(workdir: Path, rounds: int) -> None:
    print(f"\n## 1. The new hire's journey at {LATENCY_MS} ms per IAM call, ÷ the sequential floor")
    print("(an HTTP client making every request a browser makes, API invite included, timed end")
    print(" to end; a page's assets fetched at once, as a browser does, the page ready when all")
    print(" have arrived; `iam-onboard serve` and the sandbox each in a process of their own)")
    db = f"sqlite:///{workdir}/journey.db"
    with sandbox_process(latency_ms=LATENCY_MS) as sandbox_url:
        proxy = TimingProxy(sandbox_url)
        try:
            token = prepare_account(proxy.url, db)
            with serve(db, proxy.url) as (base, pid):
                person = Journey(base, token)
                person.run("warm0")  # imports, first templates, the account-info cache
                person.run("warm1")
                seen: list[float] = []
                cpu: list[float] = []
                latencies: list[float] = []
                timeline: list[tuple[str, float, float]] = []
                for i in range(rounds):
                    mark = len(proxy.timeline)
                    cpu_before = cpu_seconds(pid)
                    started = time.perf_counter()
                    person.run(f"j{i:03d}")
                    seen.append(time.perf_counter() - started)
                    cpu.append(cpu_seconds(pid) - cpu_before)
                    timeline = sorted(proxy.timeline[mark:], key=lambda c: c[1])
                    latencies.extend(ended - began for _a, began, ended in timeline)
                person.close()
        finally:
            proxy.stop()
    per_call = statistics.mean(latencies)
    floor = len(FLOOR_CHAIN) * per_call
    took = statistics.median(seen)
    ratio = took / floor
    print(f"sequential floor: {' → '.join(FLOOR_CHAIN)}")
    print(
        f"  {len(FLOOR_CHAIN)} calls × {per_call * 1000:.0f} ms (the mean IAM call, as the "
        f"portal waited for it: from the timing proxy reading the request line to its answer "
        f"written back) = {floor * 1000:.0f} ms"
    )
    chain = longest_chain(timeline)
    t0 = timeline[0][1] if timeline else 0.0
    print(
        f"the portal's {len(timeline)} calls (the last journey; ms from its first call), "
        f"{len(chain)} of them one after another (→):"
    )
    for i, (action, began, ended) in enumerate(timeline):
        mark = "→" if i in chain else " "
        print(f"  {mark} {action:<26} {(began - t0) * 1000:>5.0f} … {(ended - t0) * 1000:>5.0f}")
    print(
        f"journey: median {took * 1000:.0f} ms over {rounds} journeys "
        f"(min {min(seen) * 1000:.0f}, max {max(seen) * 1000:.0f}): {ratio:.2f}× the floor"
    )
    cpu_ms = statistics.median(cpu) * 1000
    print(f"\n## 3. Server CPU time per journey: {cpu_ms:.0f} ms (median; user + system)")
    summary["journey_vs_floor"] = f"{ratio:.2f}"
    summary["server_cpu_ms_per_journey"] = f"{cpu_ms:.0f}"


# -- 2. bulk invitations under the account's bucket -------------------------------------------
def bench_bulk(workdir: Path, invitations: int, clients: int) -> None:
    print(
        f"\n## 2. Bulk API invitations under a {BULK_RATE} call/s account bucket "
        f"({LATENCY_MS} ms a call, {clients} concurrent clients)"
    )
    db = f"sqlite:///{workdir}/bulk.db"
    with sandbox_process(latency_ms=LATENCY_MS, rate=BULK_RATE, burst=BULK_RATE) as url:
        proxy = FaultProxy(url)
        try:
            token = prepare_account(proxy.url, db)
            with serve(db, proxy.url) as (base, _pid):
                time.sleep(1.5)  # the set-up's calls emptied the bucket: let it fill again
                before = proxy.count()
                failures: list[str] = []

                def invite(n: int) -> None:
                    """One invitation as an HR system sends it, once: the portal paces its
                    own calls to the account's rate (botocore's adaptive retry mode), so none
                    should fail, and a client that had to send it again would hide a failure."""
                    with httpx.Client(base_url=base, timeout=300) as api:
                        r = api.post(
                            "/api/v1/invitations",
                            json={"user_name": f"bulk{n:04d}", "email": f"b{n}@example.com"},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        if not r.is_success:
                            failures.append(f"{r.status_code} {r.text[:120]}")

                started = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    list(pool.map(invite, range(invitations)))
                took = time.perf_counter() - started
                calls = proxy.count() - before
        finally:
            proxy.stop()
    made = invitations - len(failures)
    best = made * CALLS_PER_INVITATION / BULK_RATE
    ratio = best / took
    print(
        f"{made} of {invitations} invitations made in {took:.1f} s ({made / took:.2f}/s), each "
        f"sent once; {calls} IAM calls reached the sandbox (throttled ones included)"
    )
    for failure in failures[:3]:
        print(f"  failed: {failure}")
    print(
        f"best under the bucket: {CALLS_PER_INVITATION} calls an invitation ÷ {BULK_RATE}/s "
        f"= {best:.1f} s; throughput ÷ best: {ratio:.2f}"
    )
    summary["bulk_vs_best"] = f"{ratio:.2f}"


# -- 4a. IAM calls per dashboard refresh -------------------------------------------------------
def iam_client(endpoint: str) -> Any:
    """A plain boto3 IAM client with the portal's client settings."""
    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=client_config(load_settings(secret_key=SECRET)),
        **SANDBOX_CREDENTIALS,
    )


def per_user_refresh(client: Any) -> None:
    """The naive way: list every user, then ListMFADevices for each (four at a time)."""
    names = [
        u["UserName"]
        for page in client.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 1000})
        for u in page["Users"]
    ]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda name: client.list_mfa_devices(UserName=name), names))


def fresh_account(sandbox: Sandbox, portal: Portal, users: int) -> None:
    sandbox.reset()
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    populate(users=users, with_mfa=users // 10)


def bench_refresh_calls(sandbox: Sandbox, workdir: Path) -> None:
    print("\n## 4a. IAM calls per dashboard refresh (counted at the HTTP endpoint)")
    print(f"{'users':>6} {'portal calls':>13} {'per-user calls':>15}")
    proxy = FaultProxy(sandbox.url)
    try:
        for users in (10, 100, 1000, 5000):
            portal = make_portal(proxy.url, f"sqlite:///{workdir}/refresh{users}.db")
            fresh_account(sandbox, portal, users)
            before = proxy.count()
            directory.refresh_directory(portal)
            portal_calls = proxy.count() - before
            before = proxy.count()
            per_user_refresh(iam_client(proxy.url))
            naive_calls = proxy.count() - before
            print(f"{users:>6} {portal_calls:>13} {naive_calls:>15}")
            portal.db.dispose()
    finally:
        proxy.stop()
    summary["refresh_calls_5000"] = str(portal_calls)


# -- 4b. dashboard page and refresh at 5,000 users ÷ at 50 ------------------------------------
def admin_cookie(portal: Portal) -> str:
    """An admin's session, made in the database as the dashboard tests do (signing in itself
    is not what is measured here)."""
    from app.services.sessions import create_session
    from app.store.models import Admin

    with portal.db.session() as s:
        admin = Admin(email="bench@example.com")
        s.add(admin)
        s.flush()
        admin_id = admin.id
    return create_session(
        portal, kind="admin", admin_id=admin_id, data={"email": "bench@example.com"}
    )


def timed_get(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    client.get(path).raise_for_status()
    return time.perf_counter() - started


def bench_dashboard(sandbox: Sandbox, slow: Sandbox, workdir: Path, views: int) -> None:
    print(f"\n## 4b. Dashboard at 5,000 users ÷ at 50 ({LATENCY_MS} ms per IAM call)")
    refreshes: dict[int, float] = {}
    sql: dict[int, float] = {}
    cookies: dict[int, str] = {}
    for users in (50, 5000):
        db = f"sqlite:///{workdir}/dash{users}.db"
        portal = make_portal(sandbox.url, db)
        fresh_account(sandbox, portal, users)
        portal.db.dispose()
        portal = make_portal(slow.url, db)  # the same moto state, every call 80 ms
        started = time.perf_counter()
        directory.refresh_directory(portal)
        refreshes[users] = time.perf_counter() - started
        # The service call alone (the SQL and the page's 50 rows), for the record.
        directory.list_users(portal, page=1)
        times = []
        for _ in range(views):
            started = time.perf_counter()
            directory.list_users(portal, page=1)
            times.append(time.perf_counter() - started)
        sql[users] = statistics.median(times)
        cookies[users] = admin_cookie(portal)
        portal.db.dispose()
    # The page as the admin's browser gets it, from `serve`: both servers up at once and the
    # views taken in turns, so the machine's drifting load falls on both alike.
    pages: dict[int, list[float]] = {50: [], 5000: []}
    with (
        serve(f"sqlite:///{workdir}/dash50.db", slow.url) as (base50, _p1),
        serve(f"sqlite:///{workdir}/dash5000.db", slow.url) as (base5000, _p2),
    ):
        clients = {
            users: httpx.Client(base_url=base, timeout=60, cookies={"iam_onboard": cookies[users]})
            for users, base in ((50, base50), (5000, base5000))
        }
        for client in clients.values():
            timed_get(client, "/admin/dashboard")  # first view: templates, caches
        for _ in range(views):
            for users, client in clients.items():
                pages[users].append(timed_get(client, "/admin/dashboard"))
        for client in clients.values():
            client.close()
    page = {users: statistics.median(seen) for users, seen in pages.items()}
    for users in (50, 5000):
        print(
            f"{users:>5} users: refresh {refreshes[users]:.2f} s; one dashboard page "
            f"{page[users] * 1000:.1f} ms over HTTP (median of {views}; the listing service "
            f"alone {sql[users] * 1000:.1f} ms)"
        )
    page_ratio = page[5000] / page[50]
    print(
        f"ratio 5,000/50 (users: 100×): refresh {refreshes[5000] / refreshes[50]:.1f}×, "
        f"page {page_ratio:.2f}× (the listing service alone {sql[5000] / sql[50]:.2f}×)"
    )
    summary["page_5000_vs_50"] = f"{page_ratio:.2f}"


# -- 4c. landing page requests per second under wrk --------------------------------------------
BARE_APP = """
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
app = FastAPI()
@app.get("/hello")
def hello():
    return HTMLResponse("<!doctype html><title>hi</title><p>hello</p>")
"""


def wrk_rps(url: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        print(f"  warning: {non2xx.group(1)} non-2xx answers from {url}")
    return float(match.group(1)) if match else 0.0


def bench_wrk(sandbox: Sandbox, workdir: Path, seconds: int) -> None:
    print("\n## 4c. Enroll landing page vs a bare FastAPI endpoint (wrk, 1 uvicorn worker each)")
    if not shutil.which("wrk"):
        print("wrk not installed (apt-get install wrk): skipped")
        return
    sandbox.reset()
    db = f"sqlite:///{workdir}/wrk.db"
    portal = make_portal(sandbox.url, db)
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    from app.services.invitations import invite_user

    link = invite_user(portal, user_name="wrkuser", email="w@example.com", actor=CLI_ACTOR).link
    portal.db.dispose()
    bare_port = free_port()
    (workdir / "bare_app.py").write_text(BARE_APP)
    bare = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port)]
        + ["--log-level", "warning", "--no-access-log"],
        cwd=workdir,
    )
    try:
        with serve(db, sandbox.url) as (base, _pid):
            landing = base + "/enroll/" + link.rsplit("/", 1)[1]
            hello = f"http://127.0.0.1:{bare_port}/hello"
            wait_for(hello)
            landing_rps = wrk_rps(landing, seconds)
            bare_rps = wrk_rps(hello, seconds)
    finally:
        bare.terminate()
        bare.wait(10)
    ratio = landing_rps / bare_rps if bare_rps else 0.0
    print(f"landing {landing_rps:.0f} req/s, bare endpoint {bare_rps:.0f} req/s, ratio {ratio:.2f}")
    summary["landing_vs_bare"] = f"{ratio:.2f}"


# -- 4d. peak memory of the server at 5,000 users ---------------------------------------------
def bench_memory(sandbox: Sandbox, workdir: Path) -> None:
    print("\n## 4d. Peak memory of `iam-onboard serve` (VmHWM) at 5,000 users, no admin sign-in")
    db = f"sqlite:///{workdir}/memory.db"
    portal = make_portal(sandbox.url, db)
    fresh_account(sandbox, portal, 5000)
    token = create_api_token(portal, name="memory")
    portal.db.dispose()
    with serve(db, sandbox.url) as (base, pid):
        idle = vm_hwm_mib(pid)
        headers = {"Authorization": f"Bearer {token}"}
        r = httpx.get(
            base + "/api/v1/users",
            params={"refresh": 1, "per_page": 100},
            headers=headers,
            timeout=120,
        )
        r.raise_for_status()
        total = r.json()["total"]
        pages = (total + 99) // 100
        for page in range(2, pages + 1):
            httpx.get(
                base + "/api/v1/users",
                params={"page": page, "per_page": 100},
                headers=headers,
                timeout=60,
            ).raise_for_status()
        peak = vm_hwm_mib(pid)
    print(
        f"{total} users listed over {pages} API pages; peak RSS {peak:.0f} MiB "
        f"(after start: {idle:.0f} MiB)"
    )
    summary["peak_rss_mib"] = f"{peak:.0f}"


@dataclass
class InProcess:
    plain: Sandbox
    slow: Sandbox


SECTIONS = ("journey", "bulk", "refresh", "dashboard", "wrk", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30, help="timed journeys")
    parser.add_argument("--invitations", type=int, default=60, help="bulk invitations")
    parser.add_argument("--clients", type=int, default=10, help="concurrent bulk API clients")
    parser.add_argument("--views", type=int, default=30, help="dashboard page views timed")
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--only", choices=SECTIONS, help="run one section")
    args = parser.parse_args()
    print(f"# iam-onboard benchmarks — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.platform()}"
    )
    import logging

    logging.basicConfig(level=logging.WARNING)
    wanted = [args.only] if args.only else list(SECTIONS)
    workdir = Path(tempfile.mkdtemp(prefix="iam-onboard-bench-"))
    boxes: InProcess | None = None
    try:
        if "journey" in wanted:
            bench_journey(workdir, args.rounds)
        if "bulk" in wanted:
            bench_bulk(workdir, args.invitations, args.clients)
        if {"refresh", "dashboard", "wrk", "memory"} & set(wanted):
            # Both share moto's in-process state (app/sandbox/server.py): one fills it fast,
            # the other answers every call 80 ms late.
            boxes = InProcess(
                start_sandbox(realism=RealismSettings()),
                start_sandbox(realism=RealismSettings(latency_ms=LATENCY_MS)),
            )
        if boxes and "refresh" in wanted:
            bench_refresh_calls(boxes.plain, workdir)
        if boxes and "dashboard" in wanted:
            bench_dashboard(boxes.plain, boxes.slow, workdir, args.views)
        if boxes and "wrk" in wanted:
            bench_wrk(boxes.plain, workdir, args.wrk_seconds)
        if boxes and "memory" in wanted:
            bench_memory(boxes.plain, workdir)
    finally:
        if boxes is not None:
            boxes.plain.stop()
            boxes.slow.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n## Summary")
    for name in SUMMARY_ORDER:
        if name in summary:
            print(f"{name}: {summary[name]}")


if __name__ == "__main__":
    main()

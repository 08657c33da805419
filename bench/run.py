"""Benchmarks: prints the figures of issue 7. Run with `make bench` (takes a few minutes).

Every figure is a ratio or a count measured in this one run, so a noisy shared machine moves
both sides of a ratio alike. Nothing here is a test: it measures and prints.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import httpx  # noqa: E402
import pyotp  # noqa: E402
import uvicorn  # noqa: E402

from app.aws.client import client_config  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.sandbox import Sandbox, start_sandbox  # noqa: E402
from app.sandbox.data import populate  # noqa: E402
from app.services import directory  # noqa: E402
from app.services.api_tokens import create_api_token  # noqa: E402
from app.services.bootstrap import bootstrap  # noqa: E402
from app.services.portal import CLI_ACTOR, Portal, build_portal  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402

SECRET = "bench-secret-" + "b" * 40


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_portal(endpoint: str, workdir: Path, name: str, **settings: Any) -> Portal:
    values = {
        "secret_key": SECRET,
        "database_url": f"sqlite:///{workdir}/{name}.db",
        "base_url": "http://127.0.0.1:9",
        "housekeeping_interval_seconds": 0,
        **settings,
    }
    return build_portal(load_settings(**values), endpoint=endpoint)


def iam_client(endpoint: str) -> Any:
    """A plain boto3 IAM client with the portal's client settings (standard retries, timeouts),
    so a comparison measures what the portal adds, not a different retry mode."""
    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=client_config(load_settings(secret_key=SECRET)),
    )


def fresh_account(sandbox: Sandbox, portal: Portal, users: int, with_mfa: int) -> None:
    sandbox.reset()
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    populate(users=users, with_mfa=with_mfa)


# -- 1. IAM calls per dashboard refresh ----------------------------------------------------
def per_user_refresh(client: Any) -> int:
    """The naive way: list every user, then ListMFADevices for each."""
    names = [
        u["UserName"]
        for page in client.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 1000})
        for u in page["Users"]
    ]
    # Four at a time, as a careful script would; the count of calls is what matters.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda name: client.list_mfa_devices(UserName=name), names))
    return len(names)


def bench_refresh_calls(sandbox: Sandbox, workdir: Path) -> dict[int, float]:
    print("\n## 1. IAM calls per dashboard refresh (counted at the HTTP endpoint)")
    print(
        f"{'users':>6} {'portal calls':>13} {'per-user calls':>15} {'portal s':>9} {'per-user s':>11}"
    )
    proxy = FaultProxy(sandbox.url)
    refresh_seconds: dict[int, float] = {}
    try:
        for users in (10, 100, 1000, 5000):
            portal = make_portal(proxy.url, workdir, f"refresh{users}")
            fresh_account(sandbox, portal, users, users // 10)
            before = proxy.count()
            started = time.perf_counter()
            directory.refresh_directory(portal)
            portal_seconds = time.perf_counter() - started
            portal_calls = proxy.count() - before
            refresh_seconds[users] = portal_seconds
            before = proxy.count()
            started = time.perf_counter()
            per_user_refresh(iam_client(proxy.url))
            naive_seconds = time.perf_counter() - started
            naive_calls = proxy.count() - before
            print(
                f"{users:>6} {portal_calls:>13} {naive_calls:>15} {portal_seconds:>9.2f} {naive_seconds:>11.2f}"
            )
            portal.db.dispose()
    finally:
        proxy.stop()
    return refresh_seconds


# -- 2. the portal's overhead for a full invite + enrollment ------------------------------
class Server:
    """The portal served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self, portal: Portal):
        from app.server import server_config

        self.port = free_port()
        config = server_config(portal, host="127.0.0.1", port=self.port)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def portal_journey(base: str, api_token: str, user: str) -> None:
    """Invite through the API, then enroll through the pages, as a new hire's browser does."""
    with httpx.Client(base_url=base, timeout=30) as api:
        r = api.post(
            "/api/v1/invitations",
            json={"user_name": user, "email": f"{user}@example.com", "groups": ["Developers"]},
            headers={"Authorization": f"Bearer {api_token}"},
        )
        r.raise_for_status()
        link = r.json()["link"]
    path = "/enroll/" + link.rsplit("/", 1)[1]
    with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as browser:
        page = browser.get(path).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        scan = browser.post(path, data={"csrf_token": csrf}).text
        secret = re.search(r'data-copy-value="([A-Z2-7]+)"', scan) or re.search(
            r"secret=([A-Z2-7]+)", scan
        )
        assert secret, "no secret on the scan page"
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', scan).group(1)  # type: ignore[union-attr]
        totp = pyotp.TOTP(secret.group(1))
        now = time.time()
        done = browser.post(
            "/enroll/verify",
            data={"csrf_token": csrf, "code1": totp.at(now - 30), "code2": totp.at(now)},
        )
        assert "/enroll/done" in str(done.url), done.text[:500]


def direct_journey(client: Any, calls: list[str], user: str) -> None:
    """The same IAM calls the portal made, in the same order, straight from boto3."""
    serial = None
    seed = None
    groups = ["MFA", "Developers"]
    for action in calls:
        if action == "GetCallerIdentity":
            boto3.client(
                "sts",
                endpoint_url=client.meta.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            ).get_caller_identity()
        elif action == "ListAccountAliases":
            client.list_account_aliases()
        elif action == "CreateUser":
            client.create_user(
                UserName=user, Tags=[{"Key": "iam-onboard:managed", "Value": "true"}]
            )
        elif action == "AddUserToGroup":
            # The portal's order: the MFA group at the invitation, the extra group at the end.
            client.add_user_to_group(UserName=user, GroupName=groups.pop(0))
        elif action == "ListVirtualMFADevices":
            client.list_virtual_mfa_devices(AssignmentStatus="Unassigned")
        elif action == "CreateVirtualMFADevice":
            device = client.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]
            serial, seed = device["SerialNumber"], device["Base32StringSeed"].decode()
        elif action == "EnableMFADevice":
            totp = pyotp.TOTP(seed or "")
            now = time.time()
            client.enable_mfa_device(
                UserName=user,
                SerialNumber=serial,
                AuthenticationCode1=totp.at(now - 30),
                AuthenticationCode2=totp.at(now),
            )
        elif action == "ListMFADevices":
            client.list_mfa_devices(UserName=user)
        elif action == "GetAccountPasswordPolicy":
            try:
                client.get_account_password_policy()
            except client.exceptions.NoSuchEntityException:
                pass
        elif action == "CreateLoginProfile":
            client.create_login_profile(
                UserName=user, Password="Bench-Passw0rd!x", PasswordResetRequired=True
            )
        elif action == "GetUser":
            client.get_user(UserName=user)
        elif action == "ListUserTags":
            client.list_user_tags(UserName=user)
        elif action == "GetLoginProfile":
            try:
                client.get_login_profile(UserName=user)
            except client.exceptions.NoSuchEntityException:
                pass
        elif action == "ListGroupsForUser":
            client.list_groups_for_user(UserName=user)
        else:
            raise SystemExit(f"bench: no direct equivalent written for {action}")


def start_sandbox_process() -> tuple[subprocess.Popen[str], str]:
    """A sandbox in a process of its own, so neither side of a ratio shares its GIL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.sandbox.data"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def start_server(
    db: str, endpoint: str, log_path: Path | None = None, **extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "IAM_ONBOARD_SECRET_KEY": SECRET,
        "IAM_ONBOARD_DATABASE_URL": db,
        "AWS_ENDPOINT_URL_IAM": endpoint,
        "IAM_ONBOARD_HOUSEKEEPING_INTERVAL_SECONDS": "0",
        "IAM_ONBOARD_BASE_URL": f"http://127.0.0.1:{port}",
        "IAM_ONBOARD_LOG_LEVEL": "WARNING",
        "IAM_ONBOARD_ASSIGNABLE_GROUPS": "Developers",
        # One client makes every journey: the per-address limit on link openings would stop it.
        "IAM_ONBOARD_ENROLL_RATE_LIMIT_PER_MINUTE": "100000000",
        **extra,
    }
    if log_path is not None:
        env["IAM_ONBOARD_LOG_LEVEL"] = "INFO"
    stderr = log_path.open("w") if log_path is not None else None
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/healthz")
    return server, base


def bench_overhead(workdir: Path, rounds: int) -> float:
    print("\n## 2. Portal overhead for a full invite + enrollment")
    print(
        "(portal: API invite + the enrollment pages over HTTP to `iam-onboard serve`; direct: the"
    )
    print(" same IAM calls from boto3; both against one sandbox process)")
    sandbox_proc, sandbox_url = start_sandbox_process()
    db = f"sqlite:///{workdir}/overhead.db"
    proxy = FaultProxy(sandbox_url)
    portal = make_portal(proxy.url, workdir, "overhead", assignable_groups=["Developers"])
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    portal.iam().create_group("Developers")
    portal.db.dispose()
    portal = make_portal(proxy.url, workdir, "overhead", assignable_groups=["Developers"])
    token = create_api_token(portal, name="bench")
    learn = Server(portal)  # in-process, through the counting proxy: which calls a journey makes
    try:
        portal_journey(learn.url, token, "learn1")
        before = proxy.count()
        portal_journey(learn.url, token, "learn2")
        calls = proxy.calls[before:]
    finally:
        learn.stop()
        proxy.stop()
        portal.db.dispose()
    print(f"IAM calls per journey ({len(calls)}): {dict(Counter(calls))}")
    log_path = workdir / "server.log"
    server, base = start_server(db, sandbox_url, log_path=log_path)
    try:
        direct = iam_client(sandbox_url)
        portal_journey(base, token, "warm")
        direct_journey(direct, calls, "dwarm")
        seen_client, seen_server, seen_aws, seen_direct = [], [], [], []
        for i in range(rounds):
            lines_before = len(log_path.read_text().splitlines())
            started = time.perf_counter()
            portal_journey(base, token, f"p{i:03d}")
            seen_client.append(time.perf_counter() - started)
            time.sleep(0.1)  # let the last log line land
            total, aws = server_seconds(log_path, lines_before)
            seen_server.append(total)
            seen_aws.append(aws)
            started = time.perf_counter()
            direct_journey(direct, calls, f"d{i:03d}")
            seen_direct.append(time.perf_counter() - started)
        client, portal_s, aws_s, direct_s = (
            median(x) for x in (seen_client, seen_server, seen_aws, seen_direct)
        )
        # Each portal journey is paired with the direct one made right after it: the machine's
        # load drifts over a run, and a pair shares it. The median of the pairs' ratios is the
        # figure; the ratio of the two medians is printed beside it.
        ratio = median([p / d for p, d in zip(seen_server, seen_direct, strict=True)])
        print(
            f"median over {rounds} journeys: portal {portal_s * 1000:.0f} ms (the server's own "
            f"time for the 6 requests, {aws_s * 1000:.0f} ms of it waiting on IAM), same IAM "
            f"calls direct {direct_s * 1000:.0f} ms"
        )
        print(
            f"overhead ratio {ratio:.2f} (median of {rounds} paired journeys; ratio of the "
            f"medians {portal_s / direct_s:.2f}; as the browser sees it, with its HTTP and "
            f"parsing: {client * 1000:.0f} ms, ratio {client / direct_s:.2f})"
        )
        return ratio
    finally:
        server.terminate()
        server.wait(10)
        sandbox_proc.terminate()
        sandbox_proc.wait(10)


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def server_seconds(log_path: Path, skip_lines: int) -> tuple[float, float]:
    """Sums of the request durations the server logged, and of their time waiting on AWS.

    The server's middleware times each request: "POST /enroll/verify 303 41.2ms (AWS 6 calls,
    30.5ms)".
    """
    lines = log_path.read_text().splitlines()[skip_lines:]
    found = [re.search(r" ([\d.]+)ms \(AWS \d+ calls, ([\d.]+)ms\)", line) for line in lines]
    total = sum(float(m.group(1)) for m in found if m) / 1000
    aws = sum(float(m.group(2)) for m in found if m) / 1000
    return total, aws


# -- 3. dashboard time at 5,000 users / at 50 ----------------------------------------------
def bench_dashboard(sandbox: Sandbox, workdir: Path) -> None:
    print("\n## 3. Dashboard time: 5,000 users vs 50")
    results: dict[int, tuple[float, float]] = {}
    for users in (50, 5000):
        portal = make_portal(sandbox.url, workdir, f"dash{users}")
        fresh_account(sandbox, portal, users, users // 10)
        started = time.perf_counter()
        directory.refresh_directory(portal)
        refresh = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(5):
            directory.list_users(portal, page=1)
        page = (time.perf_counter() - started) / 5
        results[users] = (refresh, page)
        print(f"{users:>5} users: refresh {refresh:.2f} s, one dashboard page {page * 1000:.0f} ms")
        portal.db.dispose()
    print(
        f"ratio 5,000/50: refresh {results[5000][0] / results[50][0]:.1f}x, "
        f"page {results[5000][1] / results[50][1]:.1f}x (users: 100x)"
    )


# -- 4. landing page requests per second under wrk ------------------------------------------
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


def wait_for(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not come up")


def bench_wrk(sandbox: Sandbox, workdir: Path, seconds: int) -> None:
    print("\n## 4. Enroll landing page vs a bare FastAPI endpoint (wrk, 1 uvicorn worker each)")
    if not shutil.which("wrk"):
        print("wrk not installed (apt-get install wrk): skipped")
        return
    sandbox.reset()
    db = f"sqlite:///{workdir}/wrk.db"
    env = {
        **os.environ,
        "IAM_ONBOARD_SECRET_KEY": SECRET,
        "IAM_ONBOARD_DATABASE_URL": db,
        "AWS_ENDPOINT_URL_IAM": sandbox.url,
        "IAM_ONBOARD_HOUSEKEEPING_INTERVAL_SECONDS": "0",
        "IAM_ONBOARD_ENROLL_RATE_LIMIT_PER_MINUTE": "100000000",
        "IAM_ONBOARD_LOG_LEVEL": "WARNING",
    }
    portal = build_portal(load_settings(secret_key=SECRET, database_url=db), endpoint=sandbox.url)
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    from app.services.invitations import invite_user

    link = invite_user(portal, user_name="wrkuser", email="w@example.com", actor=CLI_ACTOR).link
    portal.db.dispose()
    port, bare_port = free_port(), free_port()
    bare_file = workdir / "bare_app.py"
    bare_file.write_text(BARE_APP)
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env={**env, "IAM_ONBOARD_BASE_URL": f"http://127.0.0.1:{port}"},
        cwd=ROOT,
    )
    bare = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=workdir,
    )
    try:
        landing = f"http://127.0.0.1:{port}/enroll/" + link.rsplit("/", 1)[1]
        hello = f"http://127.0.0.1:{bare_port}/hello"
        wait_for(landing)
        wait_for(hello)
        landing_rps = wrk_rps(landing, seconds)
        bare_rps = wrk_rps(hello, seconds)
        print(
            f"landing {landing_rps:.0f} req/s, bare endpoint {bare_rps:.0f} req/s, "
            f"ratio {landing_rps / bare_rps:.2f}"
        )
    finally:
        for p in (server, bare):
            p.terminate()
            p.wait(10)


# -- 5. peak memory of the server at 5,000 users -------------------------------------------
def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_memory(sandbox: Sandbox, workdir: Path) -> None:
    print("\n## 5. Peak memory of the server (VmHWM) at 5,000 users")
    db = f"sqlite:///{workdir}/memory.db"
    portal = build_portal(load_settings(secret_key=SECRET, database_url=db), endpoint=sandbox.url)
    fresh_account(sandbox, portal, 5000, 500)
    token = create_api_token(portal, name="memory")
    portal.db.dispose()
    port = free_port()
    env = {
        **os.environ,
        "IAM_ONBOARD_SECRET_KEY": SECRET,
        "IAM_ONBOARD_DATABASE_URL": db,
        "AWS_ENDPOINT_URL_IAM": sandbox.url,
        "IAM_ONBOARD_HOUSEKEEPING_INTERVAL_SECONDS": "0",
        "IAM_ONBOARD_BASE_URL": f"http://127.0.0.1:{port}",
        "IAM_ONBOARD_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env, cwd=ROOT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/healthz")
        idle = vm_hwm_mib(server.pid)
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
        print(
            f"{total} users listed over {pages} API pages; server peak RSS {vm_hwm_mib(server.pid):.0f} MiB "
            f"(after start: {idle:.0f} MiB)"
        )
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30, help="journeys for the overhead ratio")
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--only", choices=["refresh", "overhead", "dashboard", "wrk", "memory"])
    args = parser.parse_args()
    print(f"# iam-onboard benchmarks — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}"
    )
    import logging

    logging.basicConfig(level=logging.WARNING)
    sandbox = start_sandbox()
    workdir = Path(tempfile.mkdtemp(prefix="iam-onboard-bench-"))
    try:
        if args.only in (None, "refresh"):
            bench_refresh_calls(sandbox, workdir)
        if args.only in (None, "overhead"):
            bench_overhead(workdir, args.rounds)
        if args.only in (None, "dashboard"):
            bench_dashboard(sandbox, workdir)
        if args.only in (None, "wrk"):
            bench_wrk(sandbox, workdir, args.wrk_seconds)
        if args.only in (None, "memory"):
            bench_memory(sandbox, workdir)
    finally:
        sandbox.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

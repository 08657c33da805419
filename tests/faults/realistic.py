"""A portal served on a sandbox as eventually consistent and as throttled as AWS, and people
using it over real HTTP: an HR script on the API, an admin in the browser, new hires.

The sandbox's window runs on a clock the test may move on (`World.settle`) once the people are
done, so that the final look at IAM sees every write without waiting out the window; while
they work, the window passes in real time, as it would on AWS.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx
import pyotp
from botocore.config import Config

from app.sandbox import SANDBOX_CREDENTIALS, Sandbox, start_sandbox
from app.sandbox.realism import RealismSettings
from app.services.admins import create_admin
from app.services.api_tokens import SCOPES, create_api_token
from app.services.bootstrap import bootstrap
from app.services.portal import CLI_ACTOR, Portal
from tests.conftest import make_portal
from tests.faultproxy import FaultProxy
from tests.helpers import csrf_of, serve_in_thread, set_up_admin, sign_in_admin

T = TypeVar("T")
BASE = "http://portal.test"  # the portal's configured base URL (make_portal)
# The checks' own client: patient with the bucket, so that looking does not fail the test.
PATIENT = Config(retries={"mode": "standard", "total_max_attempts": 20})


class MovableClock:
    """time.monotonic, plus what the test has moved it on by."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


class SandboxTime:
    """The sandbox's TOTP clock as tests.helpers.Clock: the portal runs on it, and an admin's
    sign-in moves it a step on instead of waiting one out."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box

    def __call__(self) -> Any:
        return self.box.now()

    def advance(self, **delta: float) -> None:
        self.box.advance_clock(delta.get("seconds", 0) + 60 * delta.get("minutes", 0))

    def step(self) -> int:
        return int(self.box.now().timestamp() // 30)


@dataclass
class World:
    portal: Portal
    box: Sandbox
    url: str
    window_clock: MovableClock
    token: str  # an API token with every scope
    iam: Any = field(default=None)  # boto3 IAM straight on the sandbox
    proxy: FaultProxy | None = None  # between the portal and the sandbox, when asked for

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def local(self, link: str) -> str:
        return link.replace(BASE, self.url, 1)

    def settle(self) -> None:
        """Move the window's clock past the window: IAM shows every write from now on."""
        self.window_clock.offset += 3600

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120)


@contextmanager
def realistic_world(tmp_path: Path, *, proxy: bool = False, **realism: Any) -> Iterator[World]:
    """A bootstrapped portal served on loopback, on a sandbox of its own with `realism`
    (behind a FaultProxy when `proxy`)."""
    window_clock = MovableClock()
    box = start_sandbox(realism=RealismSettings(clock=window_clock, **realism))
    between = FaultProxy(box.url) if proxy else None
    try:
        box.reset()
        portal = make_portal(
            box,
            f"sqlite:///{tmp_path}/portal.db",
            endpoint=between.url if between else None,
            assignable_groups=["Developers"],
            # Every new hire here comes from 127.0.0.1: one office behind one address.
            enroll_rate_limit_per_minute=1000,
        )
        portal.clock = SandboxTime(box)
        bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
        portal.iam().create_group("Developers")
        token = create_api_token(portal, name="hr", scopes=list(SCOPES))
        iam = boto3.client(
            "iam", endpoint_url=box.url, region_name="us-east-1", config=PATIENT,
            **SANDBOX_CREDENTIALS,
        )  # fmt: skip
        try:
            with serve_in_thread(portal) as url:
                yield World(portal, box, url, window_clock, token, iam, between)
        finally:
            portal.db.dispose()
    finally:
        box.set_clock(None)  # the TOTP clock is the process's: leave it as it was found
        if between is not None:
            between.stop()
        box.stop()


def side_by_side(jobs: list[Any], workers: int = 10) -> list[Any]:
    """Run the zero-argument callables at once; their results in order (the first error raised)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


# -- people ----------------------------------------------------------------------------------
def api_invite(world: World, name: str, **extra: Any) -> str:
    """HR's script invites `name`; returns the enrollment link."""
    with world.api() as api:
        body = {"user_name": name, "email": f"{name}@example.com", **extra}
        r = api.post("/api/v1/invitations", json=body)
    assert r.status_code == 201, r.text
    return world.local(r.json()["link"])


def signed_in_admin(world: World, email: str = "ada@example.com") -> httpx.Client:
    """A browser where an admin has set up and signed in (the caller closes it)."""
    browser = httpx.Client(base_url=world.url, timeout=120)
    clock = SandboxTime(world.box)
    link = create_admin(world.portal, email=email, actor=CLI_ACTOR).link
    seed = set_up_admin(browser, link.removeprefix(BASE), clock)
    sign_in_admin(browser, email, seed, clock)
    return browser


def web_invite(world: World, browser: httpx.Client, name: str) -> str:
    """The admin fills in the invite form; returns the link the result page shows."""
    page = browser.get("/admin/invite")
    data = {
        "csrf_token": csrf_of(page.text),
        "user_name": name,
        "email": f"{name}@example.com",
        "note": "",
    }
    r = browser.post("/admin/invite", data=data, follow_redirects=True)
    assert r.status_code == 200, r.text
    found = re.search(r"(http://portal\.test/enroll/[A-Za-z0-9_-]+)", r.text)
    assert found, r.text
    return world.local(found.group(1))


def enroll(world: World, link: str) -> None:
    """The new hire opens the link, scans the code, types two codes and reaches the end."""
    with httpx.Client(follow_redirects=True, timeout=120) as browser:
        landing = browser.get(link)
        assert landing.status_code == 200, landing.text
        scan = browser.post(link, data={"csrf_token": csrf_of(landing.text)})
        assert scan.status_code == 200, scan.text
        seed = re.search(r"secret=([A-Z2-7]+)", scan.text)
        assert seed, scan.text
        totp, now = pyotp.TOTP(seed.group(1)), world.box.now().timestamp()
        done = browser.post(
            world.url + "/enroll/verify",
            data={
                "csrf_token": csrf_of(scan.text),
                "code1": totp.at(now - 30),
                "code2": totp.at(now),
            },
        )
        assert done.status_code == 200, done.text
        assert "temp-password" in done.text or "password" in done.text.lower(), done.text


# -- what an operator's AWS CLI shows once IAM has settled ----------------------------------
def iam_users(world: World) -> list[str]:
    pages = world.iam.get_paginator("list_users").paginate()
    return sorted(u["UserName"] for page in pages for u in page["Users"])


def mfa_members(world: World) -> list[str]:
    pages = world.iam.get_paginator("get_group").paginate(GroupName="MFA")
    return sorted(u["UserName"] for page in pages for u in page["Users"])


def devices_of(world: World, user: str) -> list[str]:
    found = world.iam.list_mfa_devices(UserName=user)["MFADevices"]
    return [d["SerialNumber"] for d in found]


def unassigned(world: World) -> list[str]:
    pages = world.iam.get_paginator("list_virtual_mfa_devices").paginate(
        AssignmentStatus="Unassigned"
    )
    return [d["SerialNumber"] for page in pages for d in page["VirtualMFADevices"]]


def has_login_profile(world: World, user: str) -> bool:
    try:
        world.iam.get_login_profile(UserName=user)
    except world.iam.exceptions.NoSuchEntityException:
        return False
    return True


def groups_of(world: World, user: str) -> list[str]:
    found = world.iam.list_groups_for_user(UserName=user)["Groups"]
    return sorted(g["GroupName"] for g in found)

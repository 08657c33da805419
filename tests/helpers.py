"""Running the real `iam-onboard` command in tests: a demo process and CLI calls against it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

CLI = [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a newcomer: no AWS credentials, no IAM_ONBOARD_* settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "IAM_ONBOARD_")) or k == "IAM_ONBOARD_TEST_POSTGRES_URL"
    }
    env["AWS_CONFIG_FILE"] = "/nonexistent"
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent"
    # The CLI speaks the language of LANG; tests read its English lines unless they ask.
    env["LANG"] = "C.UTF-8"
    env.update(extra)
    return env


@dataclass
class Demo:
    process: subprocess.Popen[str]
    portal_url: str
    iam_url: str
    database_url: str
    output: list[str] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """What another `iam-onboard` command needs to act on this same portal."""
        return clean_env(
            IAM_ONBOARD_DATABASE_URL=self.database_url,
            IAM_ONBOARD_BASE_URL=self.portal_url,
            AWS_ENDPOINT_URL_IAM=self.iam_url,
            **extra,
        )

    def cli(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env=self.env(**extra_env), capture_output=True, text=True, timeout=60
        )

    def stop(self) -> str:
        """Ctrl-C the demo; returns everything it wrote."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        rest = self.process.stdout.read() if self.process.stdout else ""
        self.output.extend(rest.splitlines())
        return "\n".join(self.output)


def start_demo(tmp_path: Path, *extra_args: str, env: dict[str, str] | None = None) -> Demo:
    port = free_port()
    database_url = f"sqlite:///{tmp_path}/demo.db"
    process = subprocess.Popen(
        [*CLI, "demo", "--port", str(port), "--database-url", database_url, *extra_args],
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    iam_url = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("demo exited early:\n" + "".join(lines))
        lines.append(line.rstrip("\n"))
        if re.fullmatch(r"http://127\.0\.0\.1:\d+", line.strip()):
            iam_url = line.strip()
        if line.startswith("Database:"):
            break
    assert iam_url, "the demo printed no sandbox endpoint line:\n" + "\n".join(lines)
    portal_url = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            if httpx.get(portal_url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    return Demo(process, portal_url, iam_url, database_url, lines)


@contextmanager
def serve_in_thread(portal: Any, *, port: int | None = None, **options: Any) -> Iterator[str]:
    """The portal on a real uvicorn in a thread on 127.0.0.1, as `serve` runs it; stopped after.

    `port`: a port chosen beforehand, when the portal's base URL must name it (SSO callbacks).
    """
    from uvicorn import Server

    from app.server import server_config

    srv = Server(server_config(portal, host="127.0.0.1", port=port or free_port(), **options))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{srv.config.port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


# -- admins in web tests ---------------------------------------------------------------------
ADMIN_PASSWORD = "correct horse battery staple"


def admin_setup_link(output: list[str]) -> str:
    """The link printed after "Admin setup link (shown once):" by the demo."""
    for index, line in enumerate(output):
        if line.startswith("Admin setup link") and index + 1 < len(output):
            return output[index + 1].strip()
    raise AssertionError("no admin setup link printed:\n" + "\n".join(output))


class Clock:
    """A portal clock that tests move by hand (portal.clock = Clock())."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def step(self) -> int:
        return int(self.now.timestamp() // 30)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token on the page"
    return match.group(1)


def seed_of(html: str) -> str:
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html)
    assert match, "no TOTP secret on the page"
    return match.group(1).replace(" ", "")


def totp_at(seed: str, step: int) -> str:
    import pyotp

    return pyotp.TOTP(seed).generate_otp(step)


def set_up_admin(client: Any, setup_path: str, clock: Clock, password: str = ADMIN_PASSWORD) -> str:
    """Walk an admin setup link through the pages (password, QR, two codes); returns the seed."""
    page = client.get(setup_path)
    assert page.status_code == 200, page.text
    r = client.post(
        setup_path,
        data={"csrf_token": csrf_of(page.text), "password": password, "password_confirm": password},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/setup/totp", r.text
    page = client.get("/admin/setup/totp")
    seed = seed_of(page.text)
    r = client.post(
        "/admin/setup/totp",
        data={
            "csrf_token": csrf_of(page.text),
            "code1": totp_at(seed, clock.step() - 1),
            "code2": totp_at(seed, clock.step()),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/sign-in?"), r.text
    return seed


def sign_in_admin(
    client: Any,
    email: str,
    seed: str,
    clock: Clock,
    *,
    password: str = ADMIN_PASSWORD,
    next_path: str = "/admin/invite",
) -> Any:
    """Password then code; moves the clock one step on so the code was never used before."""
    page = client.get("/admin/sign-in")
    r = client.post(
        "/admin/sign-in",
        data={
            "csrf_token": csrf_of(page.text),
            "email": email,
            "password": password,
            "next": next_path,
        },
        follow_redirects=False,
    )
    # A refusal is a 303 too (back to the form, Post/Redirect/Get): the next step is the code.
    assert r.status_code == 303 and r.headers["location"] == "/admin/sign-in/code", r.text
    clock.advance(seconds=30)
    page = client.get("/admin/sign-in/code")
    r = client.post(
        "/admin/sign-in/code",
        data={"csrf_token": csrf_of(page.text), "code": totp_at(seed, clock.step())},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"].split("?")[0] not in ("/admin/sign-in", "/admin/sign-in/code")
    return r


def answer_of(client: Any, r: Any) -> Any:
    """The page answering a form: the POST says 303 (Post/Redirect/Get, app/web/prg.py), the GET
    it leads to shows the answer. `client`: a TestClient or an httpx client of the portal."""
    assert r.status_code == 303, (r.status_code, r.text[:500])
    return client.get(r.headers["location"], follow_redirects=False)


@contextmanager
def signed_in_admin(portal: Any, email: str = "ada@example.com") -> Iterator[Any]:
    """A browser (TestClient) on the portal with a new admin set up and signed in; the portal
    runs on a test clock (its codes come from clock steps, never the wall clock)."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.services.admins import create_admin
    from app.services.portal import CLI_ACTOR

    clock = Clock()
    portal.clock = clock
    with TestClient(create_app(portal), base_url="http://portal.test") as client:
        link = create_admin(portal, email=email, actor=CLI_ACTOR).link
        seed = set_up_admin(client, link.removeprefix("http://portal.test"), clock)
        sign_in_admin(client, email, seed, clock)
        yield client

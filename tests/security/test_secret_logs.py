"""No secret reaches a log: the whole journey, driven over HTTP, with every log at DEBUG.

The journey: an admin's setup link, password and TOTP setup, sign-in; an invitation; the new hire's
exchange, QR page, two codes and temporary password; a lost phone (MFA reset with a step-up code)
and the new link; the HR system's API token inviting, resending and resetting; sign-out. Then the
log text is searched for every secret of it: both TOTP seeds (as shown, grouped, and base64 as IAM
carries it), every code, the temporary password, every link token, the admin setup token, the API
token, every session cookie value and the admin's password. None may be there.

Twice: in this process on a real uvicorn, root logger and every library's logger at DEBUG (SQL
with its parameters, botocore, uvicorn) plus whatever reaches stdout/stderr; and as the real
`iam-onboard demo` with IAM_ONBOARD_LOG_LEVEL=DEBUG, all it writes read. Each in both log
formats: text and IAM_ONBOARD_LOG_FORMAT=json, where every line must also parse as JSON (and
is searched as written and as decoded: JSON escapes a quote or a backslash of a secret).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest

from app.logs import JsonFormatter
from app.services.admins import create_admin
from app.services.api_tokens import create_api_token
from app.services.portal import CLI_ACTOR, Portal
from tests.helpers import ADMIN_PASSWORD, admin_setup_link, clean_env, csrf_of, serve_in_thread
from tests.security.support import RunningDemo

ADMIN = "admin@example.com"
LINK = re.compile(r"/enroll/([A-Za-z0-9_-]{30,})")


class Steps:
    """TOTP steps for the admin's codes: never one used before, always within a step of now.

    `now` is the portal's clock; `advance` moves it on by 30 seconds, or is None when the
    portal runs on real time (the demo), and then the journey waits for the next step.
    """

    def __init__(self, now: Callable[[], datetime], advance: Callable[[], None] | None):
        self.now = now
        self.advance = advance
        self.last = 0

    def step(self) -> int:
        return int(self.now().timestamp()) // 30

    def next(self) -> int:
        wanted = max(self.last + 1, self.step() - 1)
        while wanted > self.step() + 1:
            if self.advance:
                self.advance()
            else:
                time.sleep(0.5)
        self.last = wanted
        return wanted


@dataclass
class Journey:
    base: str
    steps: Steps
    secrets: dict[str, str] = field(default_factory=dict)
    cookies: set[str] = field(default_factory=set)

    def keep(self, label: str, value: str) -> str:
        assert value, label
        self.secrets[label] = value
        return value

    def client(self) -> httpx.Client:
        def seen(response: httpx.Response) -> None:
            for header in response.headers.get_list("set-cookie"):
                name, value = header.split(";", 1)[0].split("=", 1)
                if name.endswith("iam_onboard"):
                    self.cookies.add(value)

        return httpx.Client(
            base_url=self.base, follow_redirects=True, event_hooks={"response": [seen]}
        )

    def code(self, label: str, seed: str, step: int) -> str:
        return self.keep(label, pyotp.TOTP(seed).at(step * 30))


def seed_on(html: str, marker: str) -> str:
    found = re.search(marker + r"[^>]*>([A-Z2-7 ]+)<", html)
    assert found, f"no {marker} on the page"
    return found.group(1).replace(" ", "")


def run_journey(j: Journey, setup_path: str, api_token: str) -> None:
    j.keep("admin setup token", setup_path.rsplit("/", 1)[1])
    j.keep("admin password", ADMIN_PASSWORD)
    j.keep("API token", api_token)
    with j.client() as admin, j.client() as hire, j.client() as hr:
        # The admin: setup link, password, TOTP (two codes), sign-in (password, code).
        page = admin.get(setup_path)
        admin.post(
            setup_path,
            data={
                "csrf_token": csrf_of(page.text),
                "password": ADMIN_PASSWORD,
                "password_confirm": ADMIN_PASSWORD,
            },
        )
        page = admin.get("/admin/setup/totp")
        admin_seed = j.keep("admin TOTP seed", seed_on(page.text, 'id="totp-secret"'))
        first = j.steps.step() - 1
        j.steps.last = first + 1
        r = admin.post(
            "/admin/setup/totp",
            data={
                "csrf_token": csrf_of(page.text),
                "code1": j.code("admin setup code 1", admin_seed, first),
                "code2": j.code("admin setup code 2", admin_seed, first + 1),
            },
        )
        assert r.status_code == 200 and "Your admin account is ready" in r.text, r.text
        page = admin.get("/admin/sign-in")
        admin.post(
            "/admin/sign-in",
            data={"csrf_token": csrf_of(page.text), "email": ADMIN, "password": ADMIN_PASSWORD},
        )
        page = admin.get("/admin/sign-in/code")
        code = j.code("admin sign-in code", admin_seed, j.steps.next())
        r = admin.post("/admin/sign-in/code", data={"csrf_token": csrf_of(page.text), "code": code})
        assert r.status_code == 200 and "Signed in as" in r.text, r.text

        # An invitation, and the new hire's whole enrollment.
        page = admin.get("/admin/invite")
        r = admin.post(
            "/admin/invite",
            data={"csrf_token": csrf_of(page.text), "user_name": "alice", "email": "a@x.io"},
        )
        link = LINK.search(r.text)
        assert link, r.text
        j.keep("invite token", link.group(1))
        landing = hire.get(link.group(0))
        hire.post(link.group(0), data={"csrf_token": csrf_of(landing.text)})
        scan = hire.get("/enroll")
        seed = j.keep("new hire's seed", seed_on(scan.text, 'id="secret"'))
        grouped = re.search(r'id="secret"[^>]*>([^<]+)<', scan.text)
        assert grouped
        j.keep("new hire's seed, grouped", grouped.group(1).strip())
        j.keep("new hire's seed in IAM's XML", base64.b64encode(seed.encode()).decode())
        now = int(time.time()) // 30  # the sandbox checks the codes on real time
        r = hire.post(
            "/enroll/verify",
            data={
                "csrf_token": csrf_of(scan.text),
                "code1": j.code("new hire's code 1", seed, now - 1),
                "code2": j.code("new hire's code 2", seed, now),
            },
        )
        done = re.search(r'id="temp-password">([^<]+)<', r.text)
        assert done, r.text
        j.keep("temporary password", done.group(1).replace("&amp;", "&"))

        # A lost phone: reset with a step-up code, and the new link opened.
        page = admin.get("/admin/users/alice/reset-mfa")
        r = admin.post(
            "/admin/users/alice/reset-mfa",
            data={
                "csrf_token": csrf_of(page.text),
                "email": "",
                "code": j.code("admin step-up code", admin_seed, j.steps.next()),
            },
        )
        link = LINK.search(r.text)
        assert link, r.text
        j.keep("reset link token", link.group(1))
        assert hire.get(link.group(0)).status_code == 200

        # The HR system.
        hr.headers["Authorization"] = f"Bearer {api_token}"
        assert hr.get("/api/v1/users").status_code == 200
        r = hr.post("/api/v1/invitations", json={"user_name": "bob", "email": "b@x.io"})
        j.keep("API invite token", r.json()["link"].rsplit("/", 1)[1])
        r = hr.post("/api/v1/users/bob/resend")
        j.keep("API resend token", r.json()["link"].rsplit("/", 1)[1])
        r = hr.post("/api/v1/users/bob/reset-mfa", json={})
        j.keep("API reset token", r.json()["link"].rsplit("/", 1)[1])

        page = admin.get("/admin/dashboard")
        admin.post("/admin/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert len(j.cookies) >= 6  # visitor ids, pending and signed-in sessions, the enrollment's


def leaks(j: Journey, text: str) -> list[str]:
    """Each secret found in the text, with the line it is on."""
    found = []
    everything = dict(j.secrets)
    everything.update({f"session cookie {i}": v for i, v in enumerate(sorted(j.cookies))})
    for label, value in everything.items():
        # Codes are six digits: a match must stand alone, not inside a longer number or id.
        pattern = (
            rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])"
            if label.endswith(("code", "code 1", "code 2"))
            else re.escape(value)
        )
        for match in re.finditer(pattern, text):
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            found.append(f"{label}: {text[start : end if end >= 0 else None][:200]}")
    return found


def assert_finds_each_secret(j: Journey) -> None:
    """The search itself works: each secret, written the way a careless log line would."""
    for label, value in j.secrets.items():
        assert leaks(j, f"INFO app: {label.split()[0]}={value}, ok"), label
    assert len(j.secrets) >= 18


# -- in this process --------------------------------------------------------------------------
def json_lines(text: str) -> list[dict[str, object]]:
    """Each line of a JSON log, parsed: one that does not parse fails the test."""
    records = []
    for line in text.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line: {line[:300]}") from None
    return records


def decoded(records: list[dict[str, object]]) -> str:
    """The JSON records' values as text, one record a line: what a log shipper stores."""
    return "\n".join(" ".join(str(v) for v in r.values()) for r in records)


class Capture(logging.Handler):
    def __init__(self, log_format: str = "text") -> None:
        super().__init__(logging.DEBUG)
        if log_format == "json":
            self.setFormatter(JsonFormatter())
        else:
            self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # with any traceback, as a log file would hold


@pytest.fixture(params=["text", "json"])
def log_format(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def everything_at_debug(log_format: str) -> Iterator[Capture]:
    capture = Capture(log_format)
    root = logging.getLogger()
    names = ["", "uvicorn", "uvicorn.error", "botocore", "urllib3", "sqlalchemy", "iam_onboard"]
    loggers = [logging.getLogger(n) for n in names]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    # The test's own HTTP client logs the URLs it asks for: that is the browser, not the portal.
    quiet = [logging.getLogger(n) for n in ("httpx", "httpcore")]
    quiet_before = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for lg, level in zip(loggers + quiet, before + quiet_before, strict=True):
            lg.setLevel(level)


@pytest.fixture
def server(portal: Portal, log_format: str) -> Iterator[str]:
    portal.settings = portal.settings.model_copy(update={"log_format": log_format})
    # As `iam-onboard serve` runs it: no access log (it would hold the link paths).
    with serve_in_thread(portal, log_level="debug") as url:
        yield url


def test_no_secret_in_any_log_in_process_with_everything_at_debug(
    portal: Portal,
    everything_at_debug: Capture,
    server: str,
    capfd: pytest.CaptureFixture[str],
    log_format: str,
) -> None:
    offset = timedelta()

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    def advance() -> None:  # the next TOTP step now, instead of waiting for it
        nonlocal offset
        offset += timedelta(seconds=30)

    portal.clock = clock
    setup = create_admin(portal, email=ADMIN, actor=CLI_ACTOR).link
    token = create_api_token(
        portal, name="hr-system", scopes=["users:read", "invitations:write", "users:lifecycle"]
    )
    journey = Journey(server, Steps(clock, advance))
    run_journey(journey, urlsplit(setup).path, token)
    # An unexpected error behind a link: the traceback is logged, the link's token is not.
    with httpx.Client(base_url=server) as browser:
        link = f"/enroll/{journey.secrets['reset link token']}"
        landing = browser.get(link)
        portal.on_iam_call = fail
        try:
            r = browser.post(link, data={"csrf_token": csrf_of(landing.text)})
        finally:
            portal.on_iam_call = None
    assert r.status_code == 500 and "Something went wrong" in r.text
    out, err = capfd.readouterr()
    text = "\n".join(everything_at_debug.lines) + "\n" + out + "\n" + err
    # The capture did capture: requests, SQL with its parameters, AWS calls, the traceback.
    for sign in ("iam_onboard.http", "sqlalchemy.engine", "botocore", "Traceback"):
        assert sign in text, sign
    assert "unhandled error on POST /enroll/[token]" in text
    assert_finds_each_secret(journey)
    assert leaks(journey, text) == []
    if log_format == "json":
        # Everything written, the handler's lines and whatever reached stdout/stderr, is JSON.
        records = json_lines("\n".join(everything_at_debug.lines) + "\n" + out + "\n" + err)
        assert leaks(journey, decoded(records)) == []
        assert_request_records(records)


def assert_request_records(records: list[dict[str, object]]) -> None:
    """The request lines carry their fields: a link's route by its template, never its token."""
    requests = [r for r in records if r["logger"] == "iam_onboard.http" and "route" in r]
    assert len(requests) >= 30
    for r in requests:
        assert {"time", "level", "request_id", "method", "status", "duration_ms"} <= r.keys()
        assert {"aws_calls", "aws_ms"} <= r.keys()
    exchange = [r for r in requests if r["route"] == "/enroll/{token}" and r["method"] == "POST"]
    assert exchange and exchange[0]["status"] == 303
    assert any(r["route"] == "/admin/setup/{token}" for r in requests)
    assert any(r.get("actor") == ADMIN for r in requests)  # pages of the signed-in admin
    assert any(r.get("actor") == "api:hr-system" for r in requests)
    assert any(isinstance(r["aws_calls"], int) and r["aws_calls"] > 0 for r in requests)


def fail(operation: str) -> None:
    raise RuntimeError(f"{operation} failed in a way nobody foresaw")


# -- the real demo ----------------------------------------------------------------------------
@pytest.mark.slow  # starts iam-onboard processes
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_in_what_the_demo_writes_at_debug(tmp_path: Path, log_format: str) -> None:
    env = clean_env(IAM_ONBOARD_LOG_LEVEL="DEBUG", IAM_ONBOARD_LOG_FORMAT=log_format)
    demo = RunningDemo(tmp_path, env=env)
    try:
        base = demo.url
        setup_link = admin_setup_link(demo.output)
        created = demo.demo.cli(
            "create-api-token",
            "hr-system",
            "--scope=users:read",
            "--scope=invitations:write",
            "--scope=users:lifecycle",
        )
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1].strip()
        assert token.startswith("iob_"), created.stdout
        journey = Journey(base, Steps(lambda: datetime.now(UTC), None))
        run_journey(journey, urlsplit(setup_link).path, token)
    finally:
        written = demo.stop()
    # The demo prints the first admin's setup link once, on purpose: that line is the only one.
    lines = written.splitlines()
    assert lines.count(setup_link) == 1
    text = "\n".join(line for line in lines if line != setup_link)
    if log_format == "json":
        # The demo's banner is printed for a person (the setup link among it); every line
        # after it, what the server writes during the journey, is one JSON object.
        banner = next(i for i, line in enumerate(lines) if line.startswith("Database:"))
        records = json_lines("\n".join(lines[banner + 1 :]))
        assert_finds_each_secret(journey)
        assert leaks(journey, text) == [] and leaks(journey, decoded(records)) == []
        assert_request_records(records)
        return
    # It did log: each request of the journey (at DEBUG the app itself adds little; its
    # libraries' chatty loggers are pinned by the CLI and app/aws/client.py).
    assert text.count("INFO iam_onboard.http") >= 30
    assert "POST /enroll/[token] 303" in text and "GET /admin/setup/[token] 200" in text
    assert_finds_each_secret(journey)
    assert leaks(journey, text) == []

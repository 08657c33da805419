"""Realism modes: the sandbox IAM made as slow, as eventually consistent and as throttled as AWS.

Real IAM answers in tens to hundreds of milliseconds, is eventually consistent (AWS IAM user
guide, "Troubleshoot IAM": "changes I make are not always immediately visible") and throttles
each account's control-plane calls, whoever makes them. The sandbox answers in ~5 ms and sees
every write at once. Three modes, all off by default, each read from the environment wherever
the sandbox starts (start_sandbox) or given by `iam-onboard demo`:

- latency (IAM_ONBOARD_SANDBOX_LATENCY_MS): every IAM and STS call takes N ms more, ±20 %;
- consistency (IAM_ONBOARD_SANDBOX_CONSISTENCY_MS): for a random part of the N ms after a
  write (drawn per entity), a just-created user, virtual MFA device, MFA assignment, login
  profile or group membership is invisible: calls naming it answer NoSuchEntity, lists omit it;
- throttling (IAM_ONBOARD_SANDBOX_RATE, IAM_ONBOARD_SANDBOX_BURST): one token bucket for the
  sandbox's account (R calls per second, B at once), shared by every client; past it, IAM
  answers `Throttling` ("Rate exceeded", HTTP 400) as AWS does. STS has its own quota in AWS
  and is not counted.

A WSGI middleware around moto's app (and around enforcement.py's, when that is on). The
clock, the sleep and the randomness are injectable, so tests never wait on the wall clock
for more than the latency they ask for.
"""

from __future__ import annotations

import io
import math
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from app.sandbox.consistency import (
    ConsistencyWindow,
    NotYetVisible,
    check_visible,
    filter_list,
    record_write,
)

LATENCY_ENV = "IAM_ONBOARD_SANDBOX_LATENCY_MS"
CONSISTENCY_ENV = "IAM_ONBOARD_SANDBOX_CONSISTENCY_MS"
RATE_ENV = "IAM_ONBOARD_SANDBOX_RATE"
BURST_ENV = "IAM_ONBOARD_SANDBOX_BURST"
JITTER = 0.2  # ±20 % around the asked latency

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
_CREDENTIAL_SERVICE = re.compile(r"Credential=[^/,\s]+/[^/]*/[^/]*/([^/]*)/")

Start = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], Start], Iterable[bytes]]


@dataclass(frozen=True)
class RealismSettings:
    """What the sandbox imitates; zero turns a mode off. clock/sleep/rng are for tests."""

    latency_ms: float = 0.0
    consistency_ms: float = 0.0
    rate: float = 0.0  # calls per second for the account; 0: no throttling
    burst: int = 0  # calls at once; 0: the rate rounded up (at least 1)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    rng: random.Random | None = field(default=None, compare=False)

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or self.consistency_ms > 0 or self.rate > 0

    @property
    def bucket_size(self) -> int:
        return self.burst if self.burst > 0 else max(1, math.ceil(self.rate))


def _number(environ: Mapping[str, str], name: str) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number ≥ 0, not {raw!r}")
    return value


def settings_from_env(environ: Mapping[str, str] | None = None) -> RealismSettings:
    env = os.environ if environ is None else environ
    burst = _number(env, BURST_ENV)
    if burst != int(burst):
        raise ValueError(f"{BURST_ENV} must be a whole number, not {env[BURST_ENV]!r}")
    return RealismSettings(
        latency_ms=_number(env, LATENCY_ENV),
        consistency_ms=_number(env, CONSISTENCY_ENV),
        rate=_number(env, RATE_ENV),
        burst=int(burst),
    )


def settings_with(
    *,
    latency_ms: float | None = None,
    consistency_ms: float | None = None,
    rate: float | None = None,
    burst: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> RealismSettings:
    """The environment's settings with the given values (the demo's options) over them."""
    base = settings_from_env(environ)
    return replace(
        base,
        latency_ms=base.latency_ms if latency_ms is None else latency_ms,
        consistency_ms=base.consistency_ms if consistency_ms is None else consistency_ms,
        rate=base.rate if rate is None else rate,
        burst=base.burst if burst is None else burst,
    )


class TokenBucket:
    """`rate` tokens per second, at most `size` stored; starts full. Thread-safe."""

    def __init__(self, rate: float, size: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or size < 1:
            raise ValueError("a token bucket needs a rate > 0 and a size ≥ 1")
        self.rate, self.size, self._clock = rate, size, clock
        self._tokens = float(size)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token if there is one; False means the call is throttled."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.size, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def refill(self) -> None:
        with self._lock:
            self._tokens, self._at = float(self.size), self._clock()


class Answer(Exception):
    """An IAM error answered by the middleware itself."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_xml(code: str, message: str) -> str:
    """AWS's XML error shape for the query protocol (IAM)."""
    return (
        f'<ErrorResponse xmlns="{IAM_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{secrets.token_hex(16)}</RequestId></ErrorResponse>"
    )


def throttled() -> Answer:
    return Answer(400, "Throttling", "Rate exceeded")


class RealisticApp:
    """WSGI middleware: throttle, wait, hide unseen writes, then let moto answer."""

    def __init__(self, app: WsgiApp, settings: RealismSettings) -> None:
        self._app = app
        self.settings = settings
        self._rng = settings.rng or random.Random()  # noqa: S311 - timing noise, not secrets
        self._rng_lock = threading.Lock()
        self.bucket = (
            TokenBucket(settings.rate, settings.bucket_size, settings.clock)
            if settings.rate > 0
            else None
        )
        self.window = (
            # Its own generator (seeded from ours): the two are used under different locks.
            ConsistencyWindow(settings.consistency_ms, settings.clock, self._fork_rng())
            if settings.consistency_ms > 0
            else None
        )

    def __call__(self, environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/moto-api/"):
            if self.window is not None:
                self.window.clear()  # a reset forgets every write
            if self.bucket is not None:
                self.bucket.refill()
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        match = _CREDENTIAL_SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = match.group(1) if match else "iam"
        action = params.get("Action", "")
        self._wait()
        try:
            if service == "iam" and self.bucket is not None and not self.bucket.take():
                raise throttled()
            if service == "iam" and self.window is not None:
                check_visible(self.window, action, params)
        except (Answer, NotYetVisible) as answer:
            return _reply(start_response, answer.status, error_xml(answer.code, str(answer)))
        if service != "iam" or self.window is None:
            return self._app(environ, start_response)
        return self._through_window(environ, start_response, action, params)

    def _fork_rng(self) -> random.Random:
        return random.Random(self._rng.getrandbits(64))  # noqa: S311 - timing noise, not secrets

    def _wait(self) -> None:
        if self.settings.latency_ms <= 0:
            return
        with self._rng_lock:
            factor = self._rng.uniform(1 - JITTER, 1 + JITTER)
        self.settings.sleep(self.settings.latency_ms * factor / 1000)

    def _through_window(
        self, environ: dict[str, Any], start_response: Start, action: str, params: dict[str, str]
    ) -> Iterable[bytes]:
        assert self.window is not None  # noqa: S101 - checked by the caller
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self._app(environ, capture)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status: str = captured["status"]
        if status.startswith("200"):
            record_write(self.window, action, params, data)
            data = filter_list(self.window, action, params, data)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(data)))])
        return [data]


def _reply(start_response: Start, status: int, xml: str) -> list[bytes]:
    reason = {400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    data = xml.encode()
    start_response(
        f"{status} {reason}", [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))]
    )
    return [data]


def wrap(app: WsgiApp, settings: RealismSettings | None) -> tuple[WsgiApp, RealisticApp | None]:
    """The sandbox's app with the modes that are on (settings None: read the environment)."""
    chosen = settings_from_env() if settings is None else settings
    if not chosen.active:
        return app, None
    realistic = RealisticApp(app, chosen)
    return realistic, realistic

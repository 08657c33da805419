"""An HTTP proxy between the portal and the sandbox that counts IAM calls and injects faults.

Faults copy what AWS (or the network) does: `Throttling` (HTTP 400), `ServiceFailure` (500),
`EntityTemporarilyUnmodifiable` and `ConcurrentModification` (409), a dropped connection before
or after the request reached IAM, and a response slower than the client's read timeout.
`hold` parks a request until `release()`, so a test can kill its caller at that moment.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ERROR_STATUS = {
    "Throttling": 400,
    "ServiceFailure": 500,
    "EntityTemporarilyUnmodifiable": 409,
    "ConcurrentModification": 409,
    "InvalidAuthenticationCode": 403,
}
# Faults that are not AWS errors but what the network does.
DROP_BEFORE = "drop-before"  # connection closed; the request never reached IAM
DROP_AFTER = "drop-after"  # IAM did the work; the answer was lost
SLOW = "slow"  # the answer arrives after the client's read timeout
# Not a fault of its own: the request waits at the proxy until the test releases it, then
# the connection drops without the request reaching IAM (the caller was killed meanwhile).
HOLD = "hold"


@dataclass
class Rule:
    """Inject `fault` into calls matching `action` (None: any), selected by `when(n)`."""

    fault: str
    action: str | None = None
    when: Callable[[int], bool] = field(default=lambda n: True)
    remaining: int | None = None  # stop after this many injections
    matched: int = 0

    def applies(self, action: str) -> bool:
        if self.action is not None and self.action != action:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        self.matched += 1
        if not self.when(self.matched):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


def _error_body(code: str) -> bytes:
    return (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error>'
        f"<Type>Sender</Type><Code>{code}</Code><Message>injected {code}</Message>"
        f"</Error><RequestId>fault-{code}</RequestId></ErrorResponse>"
    ).encode()


class FaultProxy:
    def __init__(self, upstream: str, *, slow_seconds: float = 3.0):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.slow_seconds = slow_seconds
        self.rules: list[Rule] = []
        self.calls: list[str] = []
        self.injected: list[tuple[str, str]] = []
        self.held = threading.Event()  # set when a request arrives at a `hold` rule
        self._released = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm the body then
            # waits for the client's delayed ACK, 40 ms on every call.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                action = (parse_qs(body.decode("utf-8", "replace")).get("Action") or ["?"])[0]
                fault = proxy._pick(action)
                if fault == HOLD:
                    proxy.held.set()
                    proxy._released.wait(timeout=120)
                    fault = DROP_BEFORE
                if fault == DROP_BEFORE:
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ERROR_STATUS:
                    self._answer(ERROR_STATUS[fault], _error_body(fault), "text/xml")
                    return
                status, payload, content_type = proxy._forward(self.path, body, self.headers)
                if fault == DROP_AFTER:
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == SLOW:
                    time.sleep(proxy.slow_seconds)
                self._answer(status, payload, content_type)

            def _answer(self, status: int, payload: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the caller gave up waiting (timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def inject(
        self,
        fault: str,
        *,
        action: str | None = None,
        times: int | None = None,
        every: int | None = None,
    ) -> Rule:
        """Add a rule: `times` injections at most; `every=3` hits the 3rd, 6th, ... match."""
        when: Callable[[int], bool] = (lambda n: n % every == 0) if every else (lambda n: True)
        rule = Rule(fault=fault, action=action, when=when, remaining=times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule; held requests go on (and drop)."""
        with self._lock:
            self.rules.clear()
        self.release()

    def reset(self) -> None:
        """No rules and no history, as if just started."""
        self.clear()
        with self._lock:
            self.calls.clear()
            self.injected.clear()
        self.held.clear()
        self._released.clear()

    def release(self) -> None:
        """Let every held request go on; it drops without reaching IAM."""
        self._released.set()

    def _pick(self, action: str) -> str | None:
        with self._lock:
            self.calls.append(action)
            for rule in self.rules:
                if rule.applies(action):
                    self.injected.append((action, rule.fault))
                    return rule.fault
        return None

    def _forward(self, path: str, body: bytes, headers: object) -> tuple[int, bytes, str]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            forwarded = {
                k: v
                for k, v in headers.items()  # type: ignore[attr-defined]
                if k.lower() not in {"host", "connection", "content-length"}
            }
            conn.request("POST", path, body=body, headers=forwarded)
            response = conn.getresponse()
            payload = response.read()
            return response.status, payload, response.getheader("Content-Type") or "text/xml"
        finally:
            conn.close()

    def count(self, action: str | None = None) -> int:
        with self._lock:
            return len(self.calls) if action is None else self.calls.count(action)

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

"""Prometheus metrics: the one place they are defined, counted and rendered.

Served at /metrics (app/web/metrics.py) when IAM_ONBOARD_METRICS_TOKEN is set. prometheus-client
decides when it is first imported whether values live in this process or in files under
PROMETHEUS_MULTIPROC_DIR (one file per process, summed at scrape time). `serve --workers N`
sets that directory before anything counts, so prometheus-client is imported here only on the
first count or scrape, never when the app's modules load.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# IAM answers in tens of milliseconds; a retried throttle or a timeout takes seconds.
IAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# AWS's codes for "slow down" (botocore's standard retry mode retries them).
THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)


@dataclass(frozen=True)
class _Metrics:
    invitations: Counter
    enrollments: Counter
    iam_calls: Counter
    iam_seconds: Histogram
    iam_throttles: Counter
    rate_limited: Counter
    housekeeping: Counter
    mail: Counter
    webhooks: Counter


_made: _Metrics | None = None
_lock = threading.Lock()


def _metrics() -> _Metrics:
    global _made
    if _made is None:
        with _lock:
            if _made is None:
                from prometheus_client import Counter, Histogram

                _made = _Metrics(
                    invitations=Counter(
                        "iam_onboard_invitations",
                        "Invitations by outcome (created, enrolled, expired, revoked, failed).",
                        ["outcome"],
                    ),
                    enrollments=Counter(
                        "iam_onboard_enrollments",
                        "Enrollments by outcome (started, done, wrong_code, locked, expired).",
                        ["outcome"],
                    ),
                    iam_calls=Counter(
                        "iam_onboard_iam_calls",
                        "AWS API calls (IAM and STS) by action and error code ('' when none).",
                        ["action", "error_code"],
                    ),
                    iam_seconds=Histogram(
                        "iam_onboard_iam_call_seconds",
                        "Time an AWS API call took, its retries included, by action.",
                        ["action"],
                        buckets=IAM_BUCKETS,
                    ),
                    iam_throttles=Counter(
                        "iam_onboard_iam_throttles",
                        "AWS answers asking to slow down (each attempt, retried or not).",
                        ["action"],
                    ),
                    rate_limited=Counter(
                        "iam_onboard_rate_limited",
                        "Requests the portal refused for coming too often (HTTP 429).",
                        ["what"],
                    ),
                    housekeeping=Counter(
                        "iam_onboard_housekeeping_runs",
                        "Housekeeping runs: ran, problems (ran, a chore failed), skipped.",
                        ["result"],
                    ),
                    mail=Counter(
                        "iam_onboard_mail_deliveries",
                        "Attempts to hand a mail to SMTP: sent or failed (kept for a retry).",
                        ["result"],
                    ),
                    webhooks=Counter(
                        "iam_onboard_webhook_deliveries",
                        "Attempts to post a notification to the webhook: sent or failed.",
                        ["result"],
                    ),
                )
    return _made


def invitation(outcome: str, n: int = 1) -> None:
    if n:
        _metrics().invitations.labels(outcome=outcome).inc(n)


def enrollment(outcome: str) -> None:
    _metrics().enrollments.labels(outcome=outcome).inc()


def iam_call(action: str, error_code: str, seconds: float) -> None:
    m = _metrics()
    m.iam_calls.labels(action=action, error_code=error_code).inc()
    m.iam_seconds.labels(action=action).observe(seconds)


def iam_attempt(action: str, error_code: str) -> None:
    if error_code in THROTTLE_CODES:
        _metrics().iam_throttles.labels(action=action).inc()


def rate_limited(what: str) -> None:
    _metrics().rate_limited.labels(what=what).inc()


def housekeeping_run(result: str) -> None:
    _metrics().housekeeping.labels(result=result).inc()


def mail_delivery(sent: bool) -> None:
    _metrics().mail.labels(result="sent" if sent else "failed").inc()


def webhook_delivery(sent: bool) -> None:
    _metrics().webhooks.labels(result="sent" if sent else "failed").inc()


def render(extra: Any = None) -> tuple[bytes, str]:
    """The exposition text of every process's metrics (and `extra`, a Collector read at
    scrape time), with its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _metrics()  # every family shows, at zero, before its first count
    body = b""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if extra is not None:
        registry = CollectorRegistry()
        registry.register(extra)
        body += generate_latest(registry)
    return body, CONTENT_TYPE_LATEST


def mark_process_dead(pid: int | None = None) -> None:
    """A worker that stops: its live gauges go (counters and histograms stay summed)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]

"""What a request spends waiting on AWS, and IAM reads run beside the caller's own calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar, copy_context
from dataclasses import dataclass, field
from typing import TypeVar


@dataclass
class AwsTime:
    """What one request spent waiting on AWS: the request log line shows it beside its total.

    `seconds` is wall time with at least one call in flight: calls made at the same time
    (a page may run independent reads side by side) count once.
    """

    calls: int = 0
    seconds: float = 0.0
    _in_flight: int = 0
    _since: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def started(self) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._since = time.perf_counter()
            self._in_flight += 1

    def ended(self) -> None:
        with self._lock:
            self.calls += 1
            self._in_flight -= 1
            if self._in_flight == 0:
                self.seconds += time.perf_counter() - self._since


# Set by the request middleware; worker threads get a copy of the context, so the same object.
aws_time: ContextVar[AwsTime | None] = ContextVar("aws_time", default=None)

T = TypeVar("T")
# As many as the request threads (anyio's 40): a page never waits behind other pages' reads.
_BACKGROUND = ThreadPoolExecutor(max_workers=40, thread_name_prefix="iam-read")


def in_background(call: Callable[[], T]) -> Future[T]:
    """Start an IAM read beside the caller's own calls (in the caller's context: its request's
    AWS time and language). On real AWS each call is a round trip of tens of milliseconds, so
    independent reads are not made one after the other. Use a gateway of its own: a gateway's
    last_request_id is not shared safely.
    """
    return _BACKGROUND.submit(copy_context().run, call)

"""Waiting out IAM's eventual consistency on what the portal itself has just written.

IAM is eventually consistent (AWS IAM user guide, "Troubleshoot IAM": "Changes that I make are
not always immediately visible"): a user, virtual MFA device, MFA assignment, login profile or
group membership the portal has just created must replicate before every call sees it. Until
then a call naming it answers NoSuchEntity (and changes nothing), and lists leave it out.
Terraform's AWS provider retries NoSuchEntity for up to two minutes after creating IAM entities
for this reason.

The portal retries only calls naming an entity it has itself just created (the caller decides,
from what it did or from its database: `IamGateway.just_created`), never one it did not create:
there NoSuchEntity is the answer. Retries are jittered (many requests do not retry in step) and
bounded by `IAM_ONBOARD_IAM_PROPAGATION_SECONDS`. The clock and the sleep are injectable, so
tests never wait on the wall clock. docs/architecture.md, "IAM as it really behaves".
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from app.aws.errors import NoSuchEntity

T = TypeVar("T")

# The first pause, its growth and its cap (seconds): replication takes from well under a second
# to a few seconds, so a pause grows to at most two seconds and a page waits no longer than it
# must.
FIRST_PAUSE = 0.1
GROWTH = 2.0
LONGEST_PAUSE = 2.0


@dataclass(frozen=True)
class Propagation:
    """How long to wait for the portal's own writes to be seen, and how to wait."""

    seconds: float
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    # A random number in [0, 1): the jitter (not a secret).
    jitter: Callable[[], float] = field(default=random.random, compare=False)  # noqa: S311

    def pauses(self) -> _Pauses:
        return _Pauses(self)

    def retry(
        self, call: Callable[[], T], *, final: Callable[[NoSuchEntity], bool] | None = None
    ) -> T:
        """`call()`, again after a jittered pause while it answers NoSuchEntity, until the
        propagation time is spent; then the last NoSuchEntity is raised. `final(error)` true:
        that NoSuchEntity is the answer, raised at once."""
        pauses = self.pauses()
        while True:
            try:
                return call()
            except NoSuchEntity as exc:
                if (final is not None and final(exc)) or not pauses.wait():
                    raise

    def until(self, seen: Callable[[], bool]) -> bool:
        """Read until `seen()` is true (a read that must show the portal's own write), within
        the propagation time; returns the last answer."""
        pauses = self.pauses()
        while True:
            if seen():
                return True
            if not pauses.wait():
                return False


class _Pauses:
    """Capped exponential pauses with full jitter (each a random part of its cap), within a
    deadline counted from the first call."""

    def __init__(self, propagation: Propagation) -> None:
        self._p = propagation
        self._deadline = propagation.clock() + propagation.seconds
        self._cap = FIRST_PAUSE

    def wait(self) -> bool:
        """Pause before the next try; False when the time is spent (no pause then)."""
        left = self._deadline - self._p.clock()
        if left <= 0:
            return False
        # Half the cap at least: a pause of a few microseconds would be a wasted call.
        pause = min(left, self._cap * (0.5 + 0.5 * self._p.jitter()))
        self._cap = min(LONGEST_PAUSE, self._cap * GROWTH)
        self._p.sleep(pause)
        return True


NO_WAIT = Propagation(0.0)

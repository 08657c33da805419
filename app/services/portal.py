"""What every use case needs: settings, the database, IAM, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.aws.client import make_clients
from app.aws.iam import IamGateway
from app.aws.propagation import Propagation
from app.config import Settings
from app.security.secretbox import SecretBox, secret_box
from app.store.db import Database
from app.store.models import utcnow


@dataclass(frozen=True)
class Actor:
    """Who does something, for the audit log: an admin's email, `cli`, `api:<token name>`."""

    name: str
    source_ip: str | None = None


CLI_ACTOR = Actor("cli")
SYSTEM_ACTOR = Actor("housekeeping")


@dataclass
class Portal:
    settings: Settings
    db: Database
    iam_clients: tuple[Any, Any]
    clock: Callable[[], datetime] = field(default=utcnow)
    on_iam_call: Callable[[str], None] | None = None
    # How to wait for IAM to show the portal's own writes; None: the settings' time, the wall
    # clock (tests inject a sleep and a clock of their own).
    propagation: Propagation | None = None

    def iam(self) -> IamGateway:
        """A gateway over the shared (thread-safe) clients; cheap, one per use case."""
        iam, sts = self.iam_clients
        propagation = self.propagation or Propagation(self.settings.iam_propagation_seconds)
        return IamGateway(iam, sts, on_call=self.on_iam_call, propagation=propagation)

    def secret_box(self, purpose: str) -> SecretBox:
        """Sealing secrets at rest for `purpose`, keyed from the app secret (and, during a
        rotation, still opening what the previous secret sealed)."""
        settings = self.settings
        return secret_box(settings.secret_key, purpose, settings.secret_key_previous)

    def link(self, path: str) -> str:
        """Links are built from the configured base URL, never from a request's Host header."""
        return f"{self.settings.base_url}{path}"


def build_portal(
    settings: Settings, *, endpoint: str | None = None, migrate: bool = True
) -> Portal:
    db = Database(settings.database_url)
    if migrate:
        db.migrate()
    return Portal(settings=settings, db=db, iam_clients=make_clients(settings, endpoint=endpoint))

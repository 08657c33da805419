"""A portal served on loopback and set up for the test OpenID Provider (tests/oidc_support.py),
with an HTTP client and a look at its audit log: the SSO tests, integration and browser."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from app.sandbox import Sandbox
from app.services.bootstrap import bootstrap
from app.services.portal import CLI_ACTOR, Portal
from app.store.models import AuditEvent
from tests.conftest import make_portal
from tests.helpers import Clock, free_port, serve_in_thread
from tests.oidc_support import OidcProvider, walk_to_callback


@dataclass
class SsoPortal:
    portal: Portal
    url: str
    client: httpx.Client
    provider: OidcProvider

    def callback_for(self, login: str, start: str = "/admin/oidc/start") -> str:
        return walk_to_callback(self.client, f"{self.url}{start}", login=login, portal_url=self.url)

    def sign_in(self, login: str) -> httpx.Response:
        return self.client.get(self.callback_for(login), follow_redirects=False)

    def audit(self, action: str) -> list[AuditEvent]:
        with self.portal.db.session() as session:
            return list(
                session.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            )


def serve_sso_portal(
    aws: Sandbox, sqlite_url: str, provider: OidcProvider, **overrides: Any
) -> Iterator[SsoPortal]:
    port = free_port()
    portal = make_portal(
        aws, sqlite_url, base_url=f"http://127.0.0.1:{port}", **provider.settings(**overrides)
    )
    portal.clock = Clock()
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    with serve_in_thread(portal, port=port) as url, httpx.Client(timeout=20) as client:
        yield SsoPortal(portal, url, client, provider)
    portal.db.dispose()

"""Attack: rotate X-Forwarded-For to dodge the per-address limits and to write any address into
the audit log (issue 13, point 6).

A real uvicorn in a thread, started as `iam-onboard serve` starts it (app.server), on 127.0.0.1:
before IAM_ONBOARD_TRUSTED_PROXIES existed, uvicorn believed X-Forwarded-For from loopback.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from app.services.invitations import invite_user
from app.services.portal import Actor, Portal
from app.store.models import AuditEvent
from tests.helpers import Clock, answer_of, csrf_of, serve_in_thread


def _link(portal: Portal) -> str:
    result = invite_user(
        portal, user_name="alice", email="alice@example.com", actor=Actor("boss@example.com")
    )
    return urlsplit(result.link).path


def _open_40_times(url: str, path: str) -> list[int]:
    with httpx.Client(base_url=url) as client:
        return [
            client.get(path, headers={"X-Forwarded-For": f"203.0.113.{i + 1}"}).status_code
            for i in range(40)
        ]


def _failed_sign_in_from(url: str, forwarded: str) -> None:
    with httpx.Client(base_url=url, headers={"X-Forwarded-For": forwarded}) as client:
        page = client.get("/admin/sign-in")
        r = client.post(
            "/admin/sign-in",
            data={
                "csrf_token": csrf_of(page.text),
                "email": "nobody@example.com",
                "password": "not the password at all",
            },
        )
        assert answer_of(client, r).status_code == 400


def _sign_in_sources(portal: Portal) -> list[str | None]:
    with portal.db.session() as session:
        return list(
            session.scalars(
                select(AuditEvent.source_ip).where(AuditEvent.action == "admin.sign_in")
            )
        )


def test_rotating_x_forwarded_for_does_not_dodge_the_enroll_limit(portal: Portal) -> None:
    portal.clock = Clock()  # every opening falls in the same minute
    assert portal.settings.enroll_rate_limit_per_minute == 30
    path = _link(portal)
    with serve_in_thread(portal) as url:
        statuses = _open_40_times(url, path)
        _failed_sign_in_from(url, "198.51.100.9")
    assert statuses.count(429) >= 10, statuses
    assert statuses[:30] == [200] * 30
    # The audit log has the address the request came from, not the one it claimed.
    assert _sign_in_sources(portal) == ["127.0.0.1"]


def test_a_trusted_proxy_s_forwarded_address_is_the_client_s(portal: Portal) -> None:
    portal.clock = Clock()
    portal.settings.trusted_proxies = ["127.0.0.0/8"]
    path = _link(portal)
    with serve_in_thread(portal) as url:
        statuses = _open_40_times(url, path)
        _failed_sign_in_from(url, "198.51.100.9")
    # Forty clients behind the proxy: each has a bucket of its own.
    assert statuses == [200] * 40
    assert _sign_in_sources(portal) == ["198.51.100.9"]


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(portal: Portal) -> None:
    portal.clock = Clock()
    portal.settings.trusted_proxies = ["10.0.0.0/8"]  # the proxy is elsewhere; we are not it
    with serve_in_thread(portal) as url:
        _failed_sign_in_from(url, "198.51.100.9")
    assert _sign_in_sources(portal) == ["127.0.0.1"]

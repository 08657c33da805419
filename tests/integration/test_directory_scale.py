"""5,000 IAM users: a dashboard refresh costs O(N/1000) IAM calls, counted on the wire."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from moto.core.utils import utcnow
from moto.iam.models import MFADevice, User, iam_backends

from app.sandbox import SANDBOX_ACCOUNT_ID, Sandbox
from app.services.bootstrap import bootstrap
from app.services.portal import CLI_ACTOR
from tests.conftest import make_portal
from tests.faultproxy import FaultProxy
from tests.integration.test_dashboard import refresh, signed_in, table

USERS = 5000
WITH_MFA = 500
MAX_CALLS = 20


def _fill_account(users: int, with_mfa: int) -> None:
    """Set up the account inside moto directly: 5,000 CreateUser calls over HTTP would take
    minutes, and only the refresh is under test. Every user is in the MFA group (the most
    GetGroup pages); the first `with_mfa` have an enabled virtual MFA device."""
    backend = iam_backends[SANDBOX_ACCOUNT_ID]["global"]
    group = backend.get_group("MFA")
    for i in range(users):
        name = f"user{i:04d}"
        user = User(SANDBOX_ACCOUNT_ID, "us-east-1", name, "/")
        backend.users[name] = user
        group.users.append(user)
        if i < with_mfa:
            device = backend.create_virtual_mfa_device(name, "/")
            device.enable_date = utcnow()
            device.user = user
            user.mfa_devices[device.serial_number] = MFADevice(device.serial_number, "", "")


@pytest.mark.slow  # 5000 users
def test_refresh_of_5000_users_costs_at_most_20_iam_calls(aws: Sandbox, sqlite_url: str):
    proxy = FaultProxy(aws.url)  # the HTTP endpoint the portal is pointed at; it counts
    try:
        portal = make_portal(aws, sqlite_url, endpoint=proxy.url)
        bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
        _fill_account(USERS, WITH_MFA)
        before = proxy.count()
        with signed_in(portal) as ada:
            started = time.perf_counter()
            page = refresh(ada)
            refresh_seconds = time.perf_counter() - started

            calls = proxy.calls[before:]
            per_action = Counter(calls)
            assert len(calls) <= MAX_CALLS, per_action
            assert per_action["ListUsers"] == 5  # 1,000 per page
            assert per_action["GetGroup"] == 5
            assert "ListMFADevices" not in per_action  # never one call per user
            assert f"{len(calls)} IAM calls" in page.text  # the portal's own count agrees

            assert "Page 1 of 100, 5000 users" in page.text
            assert f"MFA (unmanaged) ({WITH_MFA})" in page.text
            assert f"no MFA ({USERS - WITH_MFA})" in page.text

            started = time.perf_counter()
            seen: dict[str, str] = {}
            for number in range(1, 101):
                html = ada.get("/admin/dashboard", params={"page": number}).text
                rows = table(html)
                assert len(rows) == 50
                seen.update(rows)
            walk_seconds = time.perf_counter() - started
            assert re.search(r"Page 100 of 100", html)
            assert len(seen) == USERS
            assert Counter(seen.values()) == {"no MFA": 4500, "MFA (unmanaged)": 500}
            assert proxy.count() == before + len(calls)  # reading pages calls no IAM
        print(
            f"\nrefresh: {len(calls)} IAM calls {dict(per_action)} in {refresh_seconds:.1f}s; "
            f"100 dashboard pages in {walk_seconds:.1f}s"
        )
        portal.db.dispose()
    finally:
        proxy.stop()

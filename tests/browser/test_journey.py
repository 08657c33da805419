"""The whole journey in headless Chromium against the real demo, through the pages only.

Admin setup, sign-in, invite; the new hire enrolls in a browser of their own; the dashboard
says `enrolled`; the admin resets the lost device (TOTP step-up); the new hire enrolls again
with the new link and a new key; the admin offboards the user, who is then gone from AWS.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.browser import flows
from tests.browser.conftest import axe_violations
from tests.helpers import Demo, admin_setup_link

pytestmark = pytest.mark.browser
NEW_HIRE = "newhire"


def _no_violations(page: Any, axe_source: str) -> None:
    found = axe_violations(page, axe_source)
    assert found == [], f"axe on {page.url}: {found}"


def test_invite_enroll_reset_reenroll_offboard(demo: Demo, chromium: Any, axe_source: str):
    base = demo.portal_url
    iam = flows.sandbox_iam(demo.iam_url)
    admin_context = flows.new_context(chromium, viewport=flows.DESK)
    admin = admin_context.new_page()
    flows.accept_confirms(admin)
    csp_errors: list[str] = []
    admin.on(
        "console",
        lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        # The third step-up comes within a step: the demo's clock is moved on, not waited for.
        codes = flows.set_up_admin(
            admin, admin_setup_link(demo.output), clock=flows.DemoClock(demo.iam_url)
        )
        flows.sign_in(admin, codes)
        link = flows.invite(admin, base, NEW_HIRE, "newhire@example.com", note="Welcome!")
        assert flows.dashboard_status(admin, base, NEW_HIRE) == "invited"

        # The new hire: a browser of their own, no cookie shared with the admin.
        first = _enroll_in_new_context(chromium, link)
        assert first.user_name == NEW_HIRE
        assert first.temp_password, "the done page shows no temporary password"
        devices = iam.list_mfa_devices(UserName=NEW_HIRE)["MFADevices"]
        assert len(devices) == 1
        assert flows.dashboard_status(admin, base, NEW_HIRE) == "enrolled"

        # Lost phone: the admin resets it from the user page, with a fresh code of their own.
        flows.open_user(admin, base, NEW_HIRE)
        flows.click_and_wait(admin, admin.get_by_role("link", name="Reset lost device"))
        assert admin.url.endswith(f"/admin/users/{NEW_HIRE}/reset-mfa")
        assert "email on record: newhire@example.com" in admin.locator("#f-email").inner_text()
        admin.get_by_label("Code from your authenticator app").fill(codes.next())
        flows.click_and_wait(
            admin, admin.get_by_role("button", name="Reset MFA and make a new link")
        )
        assert admin.get_by_role("heading", name=f"MFA of {NEW_HIRE} was reset").is_visible()
        new_link = admin.locator("#enroll-link").inner_text().strip()
        assert new_link.startswith(base + "/enroll/") and new_link != link
        _no_violations(admin, axe_source)
        assert iam.list_mfa_devices(UserName=NEW_HIRE)["MFADevices"] == []

        # The old link is dead; the new one gives a new key.
        assert _link_refused(chromium, link)
        second = _enroll_in_new_context(chromium, new_link)
        assert second.seed != first.seed
        assert second.temp_password and second.temp_password != first.temp_password
        assert flows.dashboard_status(admin, base, NEW_HIRE) == "enrolled"

        # Offboarding: the dry run first, then the typed name and a fresh code.
        flows.open_user(admin, base, NEW_HIRE)
        flows.click_and_wait(admin, admin.get_by_role("link", name="Offboard", exact=True))
        items = admin.locator("#offboard-items").inner_text()
        assert "MFA" in items and f"IAM user {NEW_HIRE}" in items, items
        assert iam.get_user(UserName=NEW_HIRE)["User"]["UserName"] == NEW_HIRE  # dry run only
        admin.get_by_label(f"Type the user name {NEW_HIRE} to confirm").fill(NEW_HIRE)
        admin.get_by_label("Code from your authenticator app").fill(codes.next())
        flows.click_and_wait(admin, admin.get_by_role("button", name=f"Offboard {NEW_HIRE}"))
        assert admin.get_by_role("heading", name=f"{NEW_HIRE} was offboarded").is_visible()
        _no_violations(admin, axe_source)
        with pytest.raises(ClientError) as gone:
            iam.get_user(UserName=NEW_HIRE)
        assert gone.value.response["Error"]["Code"] == "NoSuchEntity"
        assert iam.list_virtual_mfa_devices()["VirtualMFADevices"] == []
        assert csp_errors == []
    finally:
        admin_context.close()


def _enroll_in_new_context(chromium: Any, link: str) -> flows.Enrolled:
    context = flows.new_context(chromium, viewport=flows.PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        enrolled = flows.enroll(page, link)
        assert page.get_by_role("heading", name="You're all set: MFA is on").is_visible()
        return enrolled
    finally:
        context.close()


def _link_refused(chromium: Any, link: str) -> bool:
    context = flows.new_context(chromium)
    try:
        page = context.new_page()
        page.goto(link)
        return bool(page.get_by_role("heading", name="This link can't be used").is_visible())
    finally:
        context.close()

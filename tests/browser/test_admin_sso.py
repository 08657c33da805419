"""An admin signs in through the identity provider's own pages in Chromium (panva's
oidc-provider on loopback), with no portal password; one outside the admin group is refused;
a destructive action is confirmed by a fresh login there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.sandbox import Sandbox
from tests.oidc_support import OidcProvider
from tests.sso_portal import SsoPortal, serve_sso_portal

pytestmark = pytest.mark.browser


@pytest.fixture
def sso(aws: Sandbox, sqlite_url: str, oidc_provider: OidcProvider) -> Iterator[SsoPortal]:
    yield from serve_sso_portal(aws, sqlite_url, oidc_provider)


def _log_in_at_provider(page: Any, login: str) -> None:
    """oidc-provider's own login page (devInteractions): the login is the account."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")


def _no_axe_violations(page: Any, axe_source: str) -> None:
    page.evaluate(axe_source)
    violations = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return r.violations.map(v => ({id: v.id, help: v.help}));
        }"""
    )
    assert violations == [], f"{page.url}: {violations}"


def test_an_admin_signs_in_through_the_provider_pages_and_confirms_an_offboarding(
    sso: SsoPortal, chromium: Any, axe_source: str, iam_client: Any
):
    iam_client.create_user(UserName="zed", Tags=[{"Key": "iam-onboard:managed", "Value": "true"}])
    context = chromium.new_context()
    page = context.new_page()
    try:
        page.goto(f"{sso.url}/admin/sign-in")
        _no_axe_violations(page, axe_source)
        page.click("text=Sign in with Test IdP")
        _log_in_at_provider(page, "alice")
        page.wait_for_url(f"{sso.url}/admin/dashboard")
        assert "alice@example.com" in page.content()

        page.goto(f"{sso.url}/admin/users/zed/offboard")
        page.click("text=Confirm it is you at Test IdP")
        # prompt=login: the provider asks again although alice is signed in there.
        _log_in_at_provider(page, "alice")
        page.wait_for_url(f"{sso.url}/admin/users/zed/offboard")
        assert "Confirmed at Test IdP" in page.content()
        page.fill("input[name=confirm_name]", "zed")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("button.button-danger")
        page.wait_for_selector("text=zed was offboarded")
    finally:
        context.close()
    names = [u["UserName"] for u in iam_client.list_users()["Users"]]
    assert "zed" not in names


def test_a_user_outside_the_admin_group_sees_a_clear_refusal(
    sso: SsoPortal, chromium: Any, axe_source: str
):
    context = chromium.new_context()
    page = context.new_page()
    try:
        page.goto(f"{sso.url}/admin/sign-in")
        page.click("text=Sign in with Test IdP")
        _log_in_at_provider(page, "bob")
        page.wait_for_selector("#refusal")
        assert "not allowed to administer this portal" in page.inner_text("#refusal")
        _no_axe_violations(page, axe_source)
        page.goto(f"{sso.url}/admin/dashboard")
        assert page.url.startswith(f"{sso.url}/admin/sign-in")
    finally:
        context.close()
    [event] = sso.audit("admin.sign_in")
    assert event.outcome == "failed" and "subject bob" in (event.detail or "")

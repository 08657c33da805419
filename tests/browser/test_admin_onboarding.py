"""A newcomer in headless Chromium: the demo's admin link, setup, sign-in, an invite, the outbox."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.helpers import Demo, admin_setup_link, start_demo

pytestmark = pytest.mark.browser
ADMIN = "admin@example.com"
PASSWORD = "correct horse battery staple"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    d = start_demo(tmp_path)
    yield d
    d.stop()


def _fits_the_phone(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} scrolls sideways ({width}px)"


def _no_axe_violations(page: Any, axe_source: str) -> None:
    # evaluate() is not subject to the page's CSP, which (rightly) refuses an injected <script>.
    page.evaluate(axe_source)
    violations = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return r.violations.map(v => ({id: v.id, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    assert violations == [], f"{page.url}: {violations}"


def test_newcomer_sets_up_the_admin_and_invites(demo: Demo, chromium: Any, axe_source: str):
    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    try:
        page.goto(admin_setup_link(demo.output))
        assert ADMIN in page.content()
        _fits_the_phone(page)
        _no_axe_violations(page, axe_source)
        page.fill("#f-password", PASSWORD)
        page.fill("#f-password_confirm", PASSWORD)
        page.get_by_role("button", name="Continue").click()

        page.wait_for_url("**/admin/setup/totp")
        assert page.locator("svg.qr-code").count() == 1
        _fits_the_phone(page)
        _no_axe_violations(page, axe_source)
        seed = page.locator("#totp-secret").inner_text().replace(" ", "")
        totp = pyotp.TOTP(seed)
        step = int(time.time() // 30)
        page.fill("#f-code1", totp.generate_otp(step - 1))
        page.fill("#f-code2", totp.generate_otp(step))
        page.get_by_role("button", name="Finish setup").click()

        page.wait_for_url("**/admin/sign-in?m=setup_done")
        assert "Your admin account is ready" in page.content()
        _no_axe_violations(page, axe_source)
        page.fill("#f-email", ADMIN)
        page.fill("#f-password", PASSWORD)
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url("**/admin/sign-in/code")
        _no_axe_violations(page, axe_source)
        # The setup spent this step; the next one is accepted a step early.
        page.fill("#f-code", totp.generate_otp(step + 1))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/admin/dashboard**")

        page.get_by_role("link", name="Invite", exact=True).click()
        page.wait_for_url("**/admin/invite")
        _fits_the_phone(page)
        _no_axe_violations(page, axe_source)
        page.fill("#f-user_name", "newhire")
        page.fill("#f-email", "newhire@example.com")
        page.fill("#f-note", "Welcome aboard!")
        page.get_by_role("button", name="Create the user and the invitation").click()
        link = page.locator("#invite-link").inner_text()
        assert re.fullmatch(re.escape(demo.portal_url) + r"/enroll/[\w-]{43}", link)
        assert "This link is shown only now." in page.content()
        assert page.get_by_role("button", name="Copy the link").is_visible()
        assert "the mail to newhire@example.com is in the outbox" in page.content()
        _fits_the_phone(page)
        _no_axe_violations(page, axe_source)
        # Post/Redirect/Get: Back is a GET of the form, Forward shows no link (and no prompt).
        back = page.go_back()
        assert back is not None and back.request.method == "GET" and back.status == 200
        assert page.url.endswith("/admin/invite")
        forward = page.go_forward()
        assert forward is not None and forward.request.method == "GET"
        assert page.locator("#invite-link").count() == 0  # shown once, not again

        page.get_by_role("link", name="Outbox", exact=True).click()
        page.wait_for_url("**/admin/outbox")
        _no_axe_violations(page, axe_source)
        page.get_by_role("link", name=re.compile("Set up your sign-in")).click()
        assert link in page.locator("pre").inner_text()
        assert "authenticator app" in page.content()
        _fits_the_phone(page)

        page.get_by_role("link", name="Dashboard", exact=True).click()
        row = page.locator("tr", has_text="newhire")
        if row.count() == 0:  # the directory snapshot predates the invite
            page.get_by_role("button", name=re.compile("Refresh")).click()
            row = page.locator("tr", has_text="newhire")
        assert "invited" in row.first.inner_text()

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/admin/sign-in?m=signed_out")
        page.goto(demo.portal_url + "/admin/invite")
        assert "/admin/sign-in" in page.url
        assert csp_errors == []
    finally:
        context.close()

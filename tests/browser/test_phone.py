"""The new hire's pages on a phone (390×844) and at a desk (1280×800).

On the phone nothing scrolls sideways, every control is big enough to tap, and the main action
of the scan page is the otpauth:// link that opens the authenticator app on that same phone.
At a desk the QR code is the main thing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import flows
from tests.browser.flows import invite_by_cli
from tests.helpers import Demo

pytestmark = pytest.mark.browser
MIN_TAP = 44

# Every visible control with its box; a link that is a word inside running text (display
# inline) is exempt, as in WCAG 2.5.8: its size is that of the text around it.
CONTROLS_JS = """() => [...document.querySelectorAll(
        'a[href], button, input, select, textarea, summary')]
    .filter(el => {
        const s = getComputedStyle(el);
        const r = el.getBoundingClientRect();
        return s.visibility !== 'hidden' && s.display !== 'none' && r.width > 0 && r.height > 0
            && el.type !== 'hidden';
    })
    .filter(el => !(el.tagName === 'A' && getComputedStyle(el).display === 'inline'))
    .map(el => {
        const r = el.getBoundingClientRect();
        return {what: el.outerHTML.slice(0, 80), width: r.width, height: r.height};
    })"""


def _fits(page: Any, where: str) -> None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{where} scrolls sideways: {scroll}px on a {inner}px screen"
    small = [c for c in page.evaluate(CONTROLS_JS) if c["width"] < MIN_TAP or c["height"] < MIN_TAP]
    assert small == [], f"{where}: tap targets under {MIN_TAP}px: {small}"


def _box(locator: Any) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, "not displayed"
    return dict(box)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_enrollment_on_a_phone(demo: Demo, chromium: Any, lang: str):
    link = invite_by_cli(demo, f"phone-{lang}")
    context = flows.new_context(chromium, viewport=flows.PHONE, is_mobile=True, has_touch=True)
    flows.set_language(context, demo.portal_url, lang)
    page = context.new_page()
    try:
        page.goto(link)
        _fits(page, "landing")
        flows.click_and_wait(page, page.locator("button.enroll-start"))
        _fits(page, "scan")

        # The main action is the link that opens the app on this phone, above the QR code.
        app_link = page.locator("a[href^='otpauth://totp/']")
        assert app_link.count() == 1 and app_link.is_visible()
        actions = page.locator("main .button:visible:not(.button-secondary)")
        first_action = min(
            (actions.nth(i) for i in range(actions.count())), key=lambda a: _box(a)["y"]
        )
        assert str(first_action.get_attribute("href")).startswith("otpauth://totp/")
        link_box, qr_box = _box(app_link), _box(page.locator("svg.qr-code"))
        assert link_box["y"] + link_box["height"] <= qr_box["y"], "the QR code comes first"
        assert link_box["width"] >= 0.8 * page.viewport_size["width"] - 64, "not a main button"

        # A wrong pair shows the error without breaking the layout.
        page.locator("#f-code1").fill("000000")
        page.locator("#f-code2").fill("000001")
        flows.click_and_wait(page, page.locator("form.enroll-codes button"))
        _fits(page, "scan with an error")

        seed = str(page.locator("#secret").get_attribute("data-copy-value"))
        first, second = flows.enrollment_pair(seed)
        page.locator("#f-code1").fill(first)
        page.locator("#f-code2").fill(second)
        flows.click_and_wait(page, page.locator("form.enroll-codes button"))
        assert page.url.endswith("/enroll/done")
        _fits(page, "done")
    finally:
        context.close()


def test_scan_page_at_a_desk(demo: Demo, chromium: Any):
    link = invite_by_cli(demo, "desk")
    context = flows.new_context(chromium, viewport=flows.DESK)
    page = context.new_page()
    try:
        page.goto(link)
        flows.click_and_wait(page, page.get_by_role("button", name="Start"))
        qr = _box(page.locator("svg.qr-code"))
        app_link = page.locator("a[href^='otpauth://totp/']")
        assert qr["width"] >= 200, "the QR code is too small to scan from a screen"
        if app_link.is_visible():
            other = _box(app_link)
            assert qr["width"] * qr["height"] > 2 * other["width"] * other["height"]
            assert qr["y"] <= other["y"] or qr["x"] + qr["width"] <= other["x"], (
                "the phone link comes before the QR code"
            )
            classes = str(app_link.get_attribute("class"))
            style = page.evaluate(
                "el => getComputedStyle(el).backgroundColor", app_link.element_handle()
            )
            assert "button" not in classes or style == "rgb(255, 255, 255)", (
                "at a desk the phone link is a quiet secondary action"
            )
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= flows.DESK["width"]
    finally:
        context.close()

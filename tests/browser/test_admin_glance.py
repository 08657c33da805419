"""The admin console read at a glance, in Chromium: the headline matches IAM, pills differ in
colour by meaning, axe-core finds nothing in English or Korean, nothing scrolls sideways on a
phone, times show in the reader's zone, and the language menu switches on a choice."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.browser import flows
from tests.browser.conftest import axe_violations
from tests.helpers import Demo, admin_setup_link, start_demo
from tests.integration.test_dashboard import mfa_user

pytestmark = pytest.mark.browser
PASSWORD = "Str0ng!Passw0rd-1"
LANGS = ("en", "ko")


@dataclass
class Console:
    demo: Demo
    context: Any
    page: Any
    base: str
    iam: Any


@pytest.fixture(scope="module")
def console(chromium: Any, axe_source: str, tmp_path_factory: Any) -> Iterator[Console]:
    """A demo with users of every kind, its admin signed in at a desk in Seoul's time zone."""
    demo = start_demo(tmp_path_factory.mktemp("glance"))
    context = flows.new_context(
        chromium, axe_source=axe_source, viewport=flows.DESK, timezone_id="Asia/Seoul"
    )
    try:
        page = context.new_page()
        flows.accept_confirms(page)
        codes = flows.set_up_admin(page, admin_setup_link(demo.output))
        flows.sign_in(page, codes)
        iam = flows.sandbox_iam(demo.iam_url)
        for name in ("dan", "dora", "dave"):  # console passwords, no MFA
            iam.create_user(UserName=name)
            iam.create_login_profile(UserName=name, Password=PASSWORD)
        mfa_user(iam, "erin", group="MFA")
        iam.create_login_profile(UserName="erin", Password=PASSWORD)
        mfa_user(iam, "fay", group=None)  # MFA, but no console password
        iam.create_user(UserName="carol")  # neither
        base = demo.portal_url
        flows.invite(page, base, "pia", "pia@example.com")  # stays pending
        locked = flows.invite(page, base, "lou", "lou@example.com")
        enrolled = flows.invite(page, base, "ena", "ena@example.com")
        hire = context.browser.new_context()
        try:
            flows.enroll(hire.new_page(), enrolled)
            _lock(hire.new_page(), locked)
        finally:
            hire.close()
        for _ in range(2):  # a few points for the chart
            page.goto(base + "/admin/dashboard")
            flows.click_and_wait(page, page.get_by_role("button", name="Refresh from AWS"))
        yield Console(demo, context, page, base, iam)
    finally:
        context.close()
        demo.stop()


def _lock(page: Any, link: str) -> None:
    """Wrong pairs of codes until the enrollment locks."""
    flows.start_enrollment(page, link)
    for _ in range(6):
        button = page.get_by_role("button", name="Check the codes")
        if button.count() == 0:
            return
        page.get_by_label("Code shown now").fill("000000")
        page.get_by_label("The next code").fill("000001")
        flows.click_and_wait(page, button)
    raise AssertionError("the enrollment did not lock after wrong codes")


def _iam_console_without_mfa(iam: Any) -> int:
    without = 0
    for user in iam.list_users()["Users"]:
        name = user["UserName"]
        try:
            iam.get_login_profile(UserName=name)
        except iam.exceptions.NoSuchEntityException:
            continue
        if not iam.list_mfa_devices(UserName=name)["MFADevices"]:
            without += 1
    return without


def _pill(page: Any, user_name: str) -> Any:
    link = page.get_by_role("link", name=user_name, exact=True)
    return page.get_by_role("row").filter(has=link).locator(".status")


def test_the_headline_matches_iam_and_pills_differ_by_meaning(console: Console):
    page = console.page
    page.goto(console.base + "/admin/dashboard")
    without = int(page.locator("#count-without-mfa").inner_text())
    assert without == _iam_console_without_mfa(console.iam) == 3
    assert page.locator("#count-with-mfa").inner_text().startswith("2")  # erin, ena
    assert page.locator("#count-pending").inner_text() == "1"  # pia
    chart = page.locator("svg.chart[role=img]")
    assert chart.count() == 1 and page.locator("svg.chart .chart-dot").count() >= 2
    assert _pill(page, "lou").inner_text() == "locked"
    assert _pill(page, "ena").inner_text() == "enrolled"
    colours = {
        name: _pill(page, name).evaluate(
            "el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]"
        )
        for name in ("lou", "ena", "pia", "dan")
    }
    assert colours["lou"] != colours["ena"], colours
    assert colours["pia"] not in (colours["lou"], colours["ena"]), colours
    # Only statuses that have users get a filter chip, and there is no second status menu.
    chips = page.locator("nav.chips a").all_inner_texts()
    assert chips and not [c for c in chips if c.endswith("(0)")], chips
    assert page.locator("main select[name=status]").count() == 0


def test_axe_finds_nothing_on_dashboard_user_and_audit_pages(console: Console, axe_source: str):
    page, base = console.page, console.base
    found = {}
    for lang in LANGS:
        flows.set_language(console.context, base, lang)
        for path in ("/admin/dashboard", "/admin/users/lou", "/admin/users/dan", "/admin/audit"):
            page.goto(base + path)
            assert page.locator("html").get_attribute("lang") == lang
            violations = axe_violations(page, axe_source)
            if violations:
                found[f"{path} [{lang}]"] = [(v["id"], v["nodes"]) for v in violations]
    flows.set_language(console.context, base, "en")
    assert not found, found


def test_nothing_scrolls_sideways_on_a_phone(console: Console):
    phone = console.context.browser.new_context(viewport=flows.PHONE)
    try:
        phone.add_cookies(console.context.cookies())
        page = phone.new_page()
        for lang in LANGS:
            flows.set_language(phone, console.base, lang)
            for path in ("/admin/dashboard", "/admin/users/lou", "/admin/audit"):
                page.goto(console.base + path)
                assert "/admin/sign-in" not in page.url
                scroll, inner = page.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]"
                )
                assert scroll <= inner, f"{path} [{lang}] scrolls sideways: {scroll}px > {inner}px"
    finally:
        phone.close()


def test_the_audit_table_fits_a_desk_screen_with_dates_on_one_line(console: Console):
    page = console.page
    page.goto(console.base + "/admin/audit")
    scroller = page.locator(".table-scroll")
    width, visible = scroller.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert width <= visible, f"the audit table overflows: {width}px in {visible}px"
    heights = page.locator("td.nowrap time").evaluate_all(
        "els => els.map(el => el.getClientRects().length)"
    )
    assert heights and set(heights) == {1}, "a date wraps onto more than one line"


def test_times_show_in_the_readers_zone_with_utc_in_the_markup(console: Console):
    page = console.page
    page.goto(console.base + "/admin/audit")
    first = page.locator("td.nowrap time").first
    assert str(first.get_attribute("datetime")).endswith("Z")
    shown = first.inner_text()
    assert "UTC" not in shown and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d \S+", shown), shown
    # Asia/Seoul is UTC+9: the local hour is nine ahead of the markup's.
    utc_hour = int(str(first.get_attribute("datetime"))[11:13])
    assert int(shown[11:13]) == (utc_hour + 9) % 24


def test_the_language_menu_switches_on_a_choice(console: Console):
    page = console.page
    page.goto(console.base + "/admin/audit")
    assert not page.locator(".lang-switch button").is_visible()  # script runs: no button
    with page.expect_navigation():
        page.locator("#language-select").select_option("ko")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.url.endswith("/admin/audit")
    with page.expect_navigation():
        page.locator("#language-select").select_option("en")
    assert page.locator("html").get_attribute("lang") == "en"
    icon = page.request.get(console.base + "/favicon.ico")
    assert icon.status == 200

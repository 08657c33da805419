"""axe-core on every page in English and Korean, and the keyboard paths through the forms.

Each page is checked in both languages (the language cookie the switcher sets); the findings of
a test are gathered and reported together, one readable block per page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.browser import flows
from tests.browser.conftest import axe_violations
from tests.browser.flows import invite_by_cli
from tests.helpers import Demo, admin_setup_link

pytestmark = pytest.mark.browser
LANGS = ("en", "ko")
SUBMIT = "main form[method=post] button[type=submit]"


@dataclass
class Axe:
    """Runs axe on pages and keeps what it found, page by page."""

    source: str
    found: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def check(self, page: Any, name: str) -> None:
        lang = page.locator("html").get_attribute("lang")
        key = f"{name} [{lang}] {page.url}"
        violations = axe_violations(page, self.source)
        if violations:
            self.found[key] = violations

    def assert_clean(self) -> None:
        lines = []
        for key, violations in self.found.items():
            lines.append(key)
            for v in violations:
                lines.append(f"  {v['id']} ({v['impact']}): {v['help']}")
                lines.extend(f"      {target}" for target in v["nodes"])
        assert not self.found, "axe-core found violations:\n" + "\n".join(lines)


@pytest.fixture
def axe(axe_source: str) -> Axe:
    return Axe(axe_source)


def check_both(axe: Axe, context: Any, page: Any, base: str, name: str, url: str) -> None:
    """A page reached by GET, checked in each language."""
    for lang in LANGS:
        flows.set_language(context, base, lang)
        page.goto(url)
        assert page.locator("html").get_attribute("lang") == lang, f"{url} is not in {lang}"
        axe.check(page, name)
    flows.set_language(context, base, "en")


def after_action_both(
    axe: Axe, context: Any, page: Any, base: str, name: str, action: Callable[[], None]
) -> None:
    """A page answering a POST: the action is done once per language."""
    for lang in LANGS:
        flows.set_language(context, base, lang)
        action()
        assert page.locator("html").get_attribute("lang") == lang, f"{name} is not in {lang}"
        axe.check(page, name)
    flows.set_language(context, base, "en")


def submit(page: Any) -> None:
    flows.click_and_wait(page, page.locator(SUBMIT).first)


def active_id(page: Any) -> str:
    return str(page.evaluate("document.activeElement ? document.activeElement.id : ''"))


def assert_code_fields(page: Any) -> None:
    """Code fields ask phones for the digit keypad and offer codes from SMS/app autofill."""
    fields = page.locator("main input[autocomplete='one-time-code']")
    assert fields.count() >= 1, f"no one-time-code field on {page.url}"
    for i in range(fields.count()):
        assert fields.nth(i).get_attribute("inputmode") == "numeric"
    names = page.locator("main input[name^='code']")
    assert names.count() == fields.count(), f"a code field without one-time-code on {page.url}"


# -- pages for anyone ---------------------------------------------------------------------------
def test_public_pages(demo: Demo, chromium: Any, axe: Axe):
    context = flows.new_context(chromium, axe_source=axe.source)
    page = context.new_page()
    base = demo.portal_url
    try:
        check_both(axe, context, page, base, "home", base + "/")
        check_both(axe, context, page, base, "error 404", base + "/no-such-page")
        check_both(axe, context, page, base, "unusable link", base + "/enroll/" + "x" * 43)
    finally:
        context.close()
    axe.assert_clean()


def test_admin_setup_and_sign_in_pages(demo: Demo, chromium: Any, axe: Axe):
    email = "second-admin@example.com"
    made = demo.cli("create-admin", email)
    assert made.returncode == 0, made.stderr
    link = made.stdout.split()[-1]
    base = demo.portal_url
    context = flows.new_context(chromium, axe_source=axe.source)
    page = context.new_page()
    try:
        check_both(axe, context, page, base, "setup password", link)

        def mismatched() -> None:
            page.goto(link)
            page.locator("#f-password").fill(flows.ADMIN_PASSWORD)
            page.locator("#f-password_confirm").fill("something else entirely")
            submit(page)
            assert active_id(page) == "f-password_confirm", "focus is not on the wrong field"

        after_action_both(axe, context, page, base, "setup password error", mismatched)
        page.goto(link)
        page.locator("#f-password").fill(flows.ADMIN_PASSWORD)
        page.locator("#f-password_confirm").fill(flows.ADMIN_PASSWORD)
        submit(page)
        check_both(axe, context, page, base, "setup TOTP", base + "/admin/setup/totp")
        assert_code_fields(page)
        codes = flows.AdminCodes(page.locator("#totp-secret").inner_text().replace(" ", ""))

        def wrong_codes() -> None:
            page.goto(base + "/admin/setup/totp")
            page.locator("#f-code1").fill("000000")
            page.locator("#f-code2").fill("000001")
            submit(page)
            assert active_id(page) in ("f-code1", "error-summary")

        after_action_both(axe, context, page, base, "setup TOTP error", wrong_codes)
        page.goto(base + "/admin/setup/totp")
        first, second = codes.setup_pair()
        page.locator("#f-code1").fill(first)
        page.locator("#f-code2").fill(second)
        submit(page)
        check_both(axe, context, page, base, "sign-in", page.url)

        def wrong_password() -> None:
            page.goto(base + "/admin/sign-in")
            page.locator("#f-email").fill(email)
            page.locator("#f-password").fill("not the password at all")
            submit(page)
            assert page.locator("#error-summary").count() == 1

        after_action_both(axe, context, page, base, "sign-in error", wrong_password)
        page.goto(base + "/admin/sign-in")
        page.locator("#f-email").fill(email)
        page.locator("#f-password").fill(flows.ADMIN_PASSWORD)
        submit(page)
        check_both(axe, context, page, base, "sign-in code", base + "/admin/sign-in/code")
        assert_code_fields(page)

        def wrong_code() -> None:
            page.goto(base + "/admin/sign-in/code")
            page.locator("#f-code").fill("000000")
            submit(page)
            assert active_id(page) == "f-code", "focus is not on the wrong code"

        after_action_both(axe, context, page, base, "sign-in code error", wrong_code)
        page.goto(base + "/admin/sign-in/code")
        page.locator("#f-code").fill(codes.next())
        submit(page)
        assert "/admin/dashboard" in page.url
    finally:
        context.close()
    axe.assert_clean()


# -- the admin console --------------------------------------------------------------------------
@dataclass
class Console:
    context: Any
    page: Any
    base: str


@pytest.fixture(scope="module")
def console(demo: Demo, chromium: Any, axe_source: str) -> Iterator[Console]:
    """The demo's admin, signed in, in a desktop browser of its own."""
    context = flows.new_context(chromium, axe_source=axe_source, viewport=flows.DESK)
    page = context.new_page()
    flows.accept_confirms(page)
    codes = flows.set_up_admin(page, admin_setup_link(demo.output))
    flows.sign_in(page, codes)
    yield Console(context, page, demo.portal_url)
    context.close()


def test_console_pages(demo: Demo, console: Console, axe: Axe):
    context, page, base = console.context, console.page, console.base
    check_both(axe, context, page, base, "dashboard, empty", base + "/admin/dashboard")
    page.goto(base + "/admin/dashboard")
    submit(page)  # Refresh from AWS
    check_both(axe, context, page, base, "dashboard, refreshed", page.url)
    check_both(axe, context, page, base, "invite", base + "/admin/invite")

    def empty_invite() -> None:
        page.goto(base + "/admin/invite")
        page.locator("#f-user_name").fill("")
        submit(page)
        assert active_id(page) == "f-user_name", "focus is not on the first invalid field"

    after_action_both(axe, context, page, base, "invite, field errors", empty_invite)
    users = iter(("alice", "bora"))

    def invite() -> None:
        name = next(users)
        page.goto(base + "/admin/invite")
        page.locator("#f-user_name").fill(name)
        page.locator("#f-email").fill(f"{name}@example.com")
        page.locator("#f-note").fill("Welcome aboard!")
        submit(page)
        assert page.locator("#invite-link").count() == 1

    after_action_both(axe, context, page, base, "invite result", invite)

    # An IAM user the portal did not invite: the send-link page is for such users.
    flows.sandbox_iam(demo.iam_url).create_user(UserName="legacy")
    page.goto(base + "/admin/dashboard")
    submit(page)
    check_both(axe, context, page, base, "dashboard, with rows", base + "/admin/dashboard")
    check_both(axe, context, page, base, "user page", base + "/admin/users/alice")
    check_both(axe, context, page, base, "user page, legacy", base + "/admin/users/legacy")
    check_both(axe, context, page, base, "reset confirm", base + "/admin/users/alice/reset-mfa")
    assert_code_fields(page)
    check_both(axe, context, page, base, "offboard dry run", base + "/admin/users/alice/offboard")
    assert_code_fields(page)

    def wrong_name() -> None:
        page.goto(base + "/admin/users/alice/offboard")
        page.locator("#f-confirm_name").fill("bob")
        submit(page)
        assert active_id(page) == "f-confirm_name"

    after_action_both(axe, context, page, base, "offboard, wrong name", wrong_name)
    check_both(axe, context, page, base, "send link", base + "/admin/users/legacy/send-link")

    def no_deadline() -> None:
        page.goto(base + "/admin/users/legacy/send-link")
        page.locator("#f-email").fill("legacy@example.com")
        page.locator("input[name=enforce][value=deadline]").check()
        submit(page)
        assert active_id(page) in ("f-deadline", "error-summary")

    after_action_both(axe, context, page, base, "send link, error", no_deadline)

    def delete_without_code() -> None:
        page.goto(base + "/admin/users/alice")
        page.get_by_role("checkbox").check()
        flows.click_and_wait(page, page.locator("form[action$='/revoke'] button"))
        assert active_id(page) == "f-code", "focus is not on the missing code"

    after_action_both(axe, context, page, base, "user page, action error", delete_without_code)
    # Resend (a new link, shown once) and revoke (done) need no step-up: one user per language.
    pending = iter(("alice", "bora", "alice", "bora"))

    def resend() -> None:
        page.goto(base + f"/admin/users/{next(pending)}")
        flows.click_and_wait(page, page.locator("form[action$='/resend'] button"))
        assert page.locator("#enroll-link").count() == 1

    after_action_both(axe, context, page, base, "new link", resend)

    def revoke() -> None:
        page.goto(base + f"/admin/users/{next(pending)}")
        flows.click_and_wait(page, page.locator("form[action$='/revoke'] button"))
        assert page.locator("#enroll-link").count() == 0
        assert page.locator("main h1").count() == 1

    after_action_both(axe, context, page, base, "revoked", revoke)
    check_both(axe, context, page, base, "outbox", base + "/admin/outbox")
    mail = page.locator("main table a").first.get_attribute("href")
    check_both(axe, context, page, base, "outbox mail", base + str(mail))
    check_both(axe, context, page, base, "audit", base + "/admin/audit")
    check_both(axe, context, page, base, "audit, bad filter", base + "/admin/audit?since=nope")
    axe.assert_clean()


# -- the new hire -------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_enrollment_pages(demo: Demo, chromium: Any, axe: Axe, lang: str):
    link = invite_by_cli(demo, f"hire-{lang}")
    context = flows.new_context(chromium, axe_source=axe.source)
    flows.set_language(context, demo.portal_url, lang)
    page = context.new_page()
    try:
        page.goto(link)
        assert page.locator("html").get_attribute("lang") == lang
        axe.check(page, "enroll landing")
        submit(page)
        axe.check(page, "scan")
        assert_code_fields(page)
        seed = str(page.locator("#secret").get_attribute("data-copy-value"))
        page.locator("#f-code1").fill("000000")
        page.locator("#f-code2").fill("000001")
        submit(page)
        assert page.locator("#error-summary").count() == 1, "no error after wrong codes"
        assert active_id(page) in ("f-code1", "error-summary"), "focus is not on the error"
        axe.check(page, "scan, wrong code")
        first, second = flows.enrollment_pair(seed)
        page.locator("#f-code1").fill(first)
        page.locator("#f-code2").fill(second)
        submit(page)
        assert page.url.endswith("/enroll/done")
        assert page.locator("#temp-password").count() == 1
        axe.check(page, "done")
        page.reload()
        assert page.locator("#temp-password").count() == 0
        axe.check(page, "done, already shown")
    finally:
        context.close()
    axe.assert_clean()


# -- the keyboard -------------------------------------------------------------------------------
def test_enrollment_by_keyboard_alone(demo: Demo, chromium: Any):
    link = invite_by_cli(demo, "keyboard")
    context = flows.new_context(chromium)
    page = context.new_page()
    try:
        page.goto(link)
        # The first Tab reaches the skip link; following it puts the focus on the content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
        assert page.locator(".skip-link").bounding_box()["x"] >= 0, "the skip link stays hidden"
        page.keyboard.press("Enter")
        assert active_id(page) == "main"
        assert page.url.endswith("#main")
        # From the content, Tab reaches Start; Enter starts.
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent.trim()") == "Start":
                break
        else:
            raise AssertionError("Start cannot be reached with Tab")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        seed = str(page.locator("#secret").get_attribute("data-copy-value"))

        # A wrong pair first: the focus lands on the field to fix.
        page.locator("#f-code1").focus()
        page.keyboard.type("123456")
        page.keyboard.press("Tab")
        assert active_id(page) == "f-code2"
        page.keyboard.type("654321")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent.trim()") == "Check the codes"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert active_id(page) in ("f-code1", "error-summary"), "focus is not on the error"

        # Then the right pair, typed and submitted with Enter from the last field.
        first, second = flows.enrollment_pair(seed)
        assert page.locator("#f-code1").input_value() == ""  # codes are never sent back
        page.locator("#f-code1").focus()
        page.keyboard.type(first)
        page.keyboard.press("Tab")
        assert active_id(page) == "f-code2"
        page.keyboard.type(second)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url.endswith("/enroll/done"), page.url
    finally:
        context.close()


def test_language_switcher_by_keyboard(demo: Demo, chromium: Any, axe: Axe):
    context = flows.new_context(chromium, axe_source=axe.source)
    page = context.new_page()
    try:
        page.goto(demo.portal_url + "/no-such-page")
        axe.check(page, "language switcher")
        for _ in range(10):
            page.keyboard.press("Tab")
            if active_id(page) == "language-select":
                break
        else:
            raise AssertionError("the language switcher cannot be reached with Tab")
        # Choosing with the arrow keys must not leave the page before the choice is confirmed
        # (WCAG 3.2.2); Enter confirms it (the Change button is there only without script).
        page.keyboard.press("ArrowDown")
        page.wait_for_timeout(300)
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("#language-select").input_value() == "ko"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("html").get_attribute("lang") == "ko"
        assert page.url.endswith("/no-such-page"), "the switcher left the page"
        axe.check(page, "language switcher")
    finally:
        context.close()
    axe.assert_clean()

"""The new hire's pages as a person meets them (issue 17): text that wraps between words on a
phone, a failed try said once, and Back or Reload that never ask to send a form again.

Chromium at 390×844; the demo's sandbox AWS; codes from the seed on the page, in real time.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import flows
from tests.browser.flows import invite_by_cli
from tests.helpers import Demo

pytestmark = pytest.mark.browser

# Every line break among the visible text of <main>: the character before it and after it, in
# the same block. Code blocks that scroll (white-space: pre) only break at their own newlines.
LINE_BREAKS_JS = """() => {
    const blockOf = (node) => {
        let el = node.parentElement;
        while (el && getComputedStyle(el).display.startsWith('inline')
               && getComputedStyle(el).display !== 'inline-block') el = el.parentElement;
        return el;
    };
    const walker = document.createTreeWalker(document.querySelector('main'),
        NodeFilter.SHOW_TEXT);
    const breaks = [];
    let prev = null;  // {ch, top, bottom, block}
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const block = blockOf(node);
        for (let i = 0; i < node.data.length; i++) {
            const range = document.createRange();
            range.setStart(node, i);
            range.setEnd(node, i + 1);
            const rects = range.getClientRects();
            if (!rects.length || rects[0].width === 0 && rects[0].height === 0) continue;
            const r = rects[0];
            const ch = node.data[i];
            if (prev && prev.block === block && r.top >= prev.bottom - 1) {
                const text = (prev.node.data.slice(Math.max(0, prev.i - 12), prev.i + 1)
                              + '|' + node.data.slice(i, i + 12));
                breaks.push({before: prev.ch, after: ch, text});
            }
            prev = {ch, top: r.top, bottom: r.bottom, block, node, i};
        }
    }
    return breaks;
}"""
# Where a line may end: after a space, a slash, a colon, a hyphen or a dot.
BREAK_AFTER = set(b" \\t\\n/:-.".decode("unicode_escape"))


def mid_word_breaks(page: Any) -> list[str]:
    return [
        b["text"]
        for b in page.evaluate(LINE_BREAKS_JS)
        if b["before"] not in BREAK_AFTER and not b["after"].isspace()
    ]


def _phone(chromium: Any, demo: Demo, lang: str) -> Any:
    context = flows.new_context(chromium, viewport=flows.PHONE, is_mobile=True, has_touch=True)
    flows.set_language(context, demo.portal_url, lang)
    return context


def _type(page: Any, first: str, second: str) -> None:
    page.locator("#f-code1").fill(first)
    page.locator("#f-code2").fill(second)
    flows.click_and_wait(page, page.locator("form.enroll-codes button"))


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_done_page_on_a_phone_wraps_only_between_words(demo: Demo, chromium: Any, lang: str):
    # A long name with every break point the page allows, as an ARN carries it.
    link = invite_by_cli(demo, f"maria.example-{lang}")
    context = _phone(chromium, demo, lang)
    page = context.new_page()
    try:
        page.goto(link)
        assert mid_word_breaks(page) == [], "landing"
        flows.click_and_wait(page, page.locator("button.enroll-start"))
        assert mid_word_breaks(page) == [], "scan"
        seed = str(page.locator("#secret").get_attribute("data-copy-value"))
        _type(page, *flows.enrollment_pair(seed))
        assert page.url.endswith("/enroll/done")

        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"the done page scrolls sideways: {scroll}px on {inner}px"
        assert mid_word_breaks(page) == []
        if lang == "en":  # the check itself sees a word broken, as the old stylesheet broke them
            page.evaluate("document.querySelector('main').style.wordBreak = 'break-all'")
            assert mid_word_breaks(page) != []
            page.evaluate("document.querySelector('main').style.wordBreak = ''")
        # The ARN wrapped (it is longer than the screen), at its own break points.
        arn = page.locator("#device-arn")
        assert arn.evaluate("el => el.getClientRects().length") >= 2
        # A command too long for the screen scrolls inside its own box instead.
        command = page.locator("#cli-session")
        assert command.evaluate("el => el.scrollWidth > el.clientWidth")

        # Names and ARNs in monospace at the size of the text around them.
        body_size = page.evaluate("getComputedStyle(document.querySelector('main p')).fontSize")
        for code in ("#user-name", "#device-arn"):
            style = page.locator(code).evaluate("el => getComputedStyle(el).fontSize")
            assert style == body_size, f"{code} is {style}, the text {body_size}"

        # The password alone in its element, "Copy the password" apart from its box, and the
        # copy button the weight and family of every other button.
        password = page.locator("#temp-password")
        assert password.inner_text() == password.evaluate("el => el.textContent")
        button = page.locator("button.js-copy[data-copy-target='temp-password']")
        assert button.is_visible()
        box, under = password.bounding_box(), button.bounding_box()
        assert box and under
        gap = max(under["y"] - (box["y"] + box["height"]), under["x"] - (box["x"] + box["width"]))
        assert gap >= 8, f"the copy button touches the password box ({gap}px)"
        styles = page.evaluate(
            """() => [...document.querySelectorAll('.button')].filter(b => b.offsetParent)
                .map(b => [getComputedStyle(b).fontWeight, getComputedStyle(b).fontFamily])"""
        )
        assert len({tuple(s) for s in styles}) == 1, styles
    finally:
        context.close()


def test_a_failed_try_is_said_once_and_back_never_asks_to_resend(demo: Demo, chromium: Any):
    link = invite_by_cli(demo, "back-button")
    context = _phone(chromium, demo, "en")
    page = context.new_page()
    try:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(link)
        flows.click_and_wait(page, page.locator("button.enroll-start"))
        seed = str(page.locator("#secret").get_attribute("data-copy-value"))

        _type(page, "000000", "000001")
        # The answer is a page of its own, reached by GET: reloading it sends nothing again.
        assert page.url.endswith("/enroll")
        main = page.locator("main").inner_text()
        assert main.count("do not match") == 1, main
        assert main.count("4 tries left") == 1 and "Tries left" not in main, main
        reloaded = page.reload()
        assert reloaded is not None and reloaded.request.method == "GET"
        assert reloaded.status == 200

        _type(page, *flows.enrollment_pair(seed))
        assert page.url.endswith("/enroll/done")
        back = page.go_back()
        assert back is not None, "Back led nowhere"
        assert 200 <= back.status < 300, back.status
        assert back.request.method == "GET"
        assert page.url.startswith(demo.portal_url)
        assert page.locator("header.site-header").count() == 1, "not a portal page"
        assert "ERR_CACHE_MISS" not in page.content()
        assert dialogs == []
    finally:
        context.close()

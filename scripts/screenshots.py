"""Screenshots of the main pages in English and Korean, taken from a throwaway demo.

    .venv/bin/python scripts/screenshots.py [OUTDIR]     (default: docs/screenshots)

Starts `iam-onboard demo`, drives the journey in Debian's Chromium (/usr/bin/chromium, or
IAM_ONBOARD_CHROMIUM) through the pages, and writes PAGE-LANG.png at 1280×800 for the landing,
scan, done, dashboard, user, audit and invite pages, plus scan-phone-LANG.png and
dashboard-phone-LANG.png at 390×844. The keys, codes and passwords in them belong to the demo's
sandbox, which is gone when the script ends.

The dashboard's MFA coverage chart needs refreshes on several days: the script first moves the
demo's clock three days back, then forward a day at a time, refreshing as people get MFA, so
the journey itself runs at the real time again.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyotp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import flows  # noqa: E402 - needs the repository on sys.path first
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.helpers import admin_setup_link, clean_env, start_demo  # noqa: E402

LANGS = ("en", "ko")
GROUPS = ("Developers", "ReadOnly")
# A new hire per language, with names that look right in that language's screenshots.
HIRES = {
    "en": ("jane.doe", "jane.doe@example.com", "Welcome to the platform team! Ping me on chat."),
    "ko": ("minji.kim", "minji.kim@example.com", "플랫폼 팀에 오신 것을 환영합니다!"),
}


# Console users made outside the portal: day by day some of them set up MFA (the chart's story).
LEGACY = ("ops.kim", "ops.park", "dev.lee", "dev.choi", "qa.jung", "fin.han")
MFA_ON_DAY = {1: ("ops.kim", "ops.park"), 2: ("dev.lee", "dev.choi")}
DAY = 24 * 3600


def shoot(page: Any, out: Path, name: str, *, full_page: bool = True) -> None:
    # No focus ring left by the last field filled; whole pages, as a person would scroll them
    # (the audit log only as far as the screen: its newest events).
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(out / f"{name}.png"), full_page=full_page, animations="disabled")
    print(f"  {name}.png")


def korean_font_missing() -> bool:
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return False
    found = subprocess.run([fc_list, ":lang=ko"], capture_output=True, text=True, check=False)  # noqa: S603
    return not found.stdout.strip()


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    if not Path(CHROMIUM).exists():
        print(f"Chromium not found at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 1
    if korean_font_missing():
        print("No Korean font: the ko pages would show boxes (apt-get install fonts-nanum)")
        return 1
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        # Two groups an invite may grant, so that the invite page shows its choices.
        env = clean_env(IAM_ONBOARD_ASSIGNABLE_GROUPS=",".join(GROUPS))
        demo = start_demo(Path(tmp), env=env)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    take_all(browser, demo, out)
                finally:
                    browser.close()
        finally:
            demo.stop()
    print(f"Screenshots in {out}")
    return 0


def take_all(browser: Any, demo: Any, out: Path) -> None:
    base = demo.portal_url
    iam = flows.sandbox_iam(demo.iam_url)
    for group in GROUPS:
        iam.create_group(GroupName=group)
    admin_context = flows.new_context(browser, viewport=flows.DESK)
    admin = admin_context.new_page()
    clock = flows.DemoClock(demo.iam_url)
    clock.wait(-3 * DAY)  # three days back: the chart's history comes first
    codes = flows.set_up_admin(admin, admin_setup_link(demo.output), clock=clock)
    flows.sign_in(admin, codes)
    history(admin, base, iam, clock, codes)
    links = {}
    for lang in LANGS:
        name, email, note = HIRES[lang]
        flows.set_language(admin_context, base, lang)
        admin.goto(base + "/admin/invite")
        # By id: the labels are in the page's language.
        admin.locator("#f-user_name").fill(name)
        admin.locator("#f-email").fill(email)
        admin.locator("#f-note").fill(note)
        admin.get_by_role("checkbox", name=GROUPS[0]).check()
        shoot(admin, out, f"invite-{lang}")
        flows.click_and_wait(admin, admin.locator("main form button[type=submit]"))
        links[lang] = admin.locator("#invite-link").inner_text().strip()

    for lang in LANGS:
        enroll(browser, base, links[lang], lang, out)

    # One user still invited, for a dashboard with more than one status.
    flows.set_language(admin_context, base, "en")
    flows.invite(admin, base, "sam.lee", "sam.lee@example.com")
    admin.goto(base + "/admin/dashboard")
    flows.click_and_wait(admin, admin.locator("form[action$='/refresh'] button"))
    phone = flows.new_context(browser, viewport=flows.PHONE, is_mobile=True, has_touch=True)
    phone.add_cookies(admin_context.cookies())  # the same admin session, on a phone
    phone_page = phone.new_page()
    for lang in LANGS:
        flows.set_language(admin_context, base, lang)
        admin.goto(base + "/admin/dashboard")
        shoot(admin, out, f"dashboard-{lang}")
        admin.goto(base + "/admin/users/" + HIRES[lang][0])
        shoot(admin, out, f"user-{lang}")
        admin.goto(base + "/admin/audit")
        shoot(admin, out, f"audit-{lang}", full_page=False)
        flows.set_language(phone, base, lang)
        phone_page.goto(base + "/admin/dashboard")
        shoot(phone_page, out, f"dashboard-phone-{lang}")
    phone.close()
    admin_context.close()


def give_mfa(iam: Any, clock: Any, name: str) -> None:
    """A virtual MFA device for `name`, enabled with two codes of the demo's own time."""
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
    totp = pyotp.TOTP(device["Base32StringSeed"].decode())
    now = clock.time()
    iam.enable_mfa_device(
        UserName=name,
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=totp.at(now - 30),
        AuthenticationCode2=totp.at(now),
    )


def history(admin: Any, base: str, iam: Any, clock: Any, codes: Any) -> None:
    """Three days of refreshes while the legacy console users turn MFA on, two at a time."""
    for name in LEGACY:
        iam.create_user(UserName=name)
        # Any password the sandbox's policy takes: nobody signs in with it.
        iam.create_login_profile(UserName=name, Password=secrets.token_urlsafe(12) + "-Aa1")
        iam.add_user_to_group(UserName=name, GroupName="MFA")
    for day in range(3):
        for name in MFA_ON_DAY.get(day, ()):
            give_mfa(iam, clock, name)
        admin.goto(base + "/admin/dashboard")
        if "/admin/sign-in" in admin.url:  # a day later the session has timed out
            flows.sign_in(admin, codes)
            admin.goto(base + "/admin/dashboard")
        flows.click_and_wait(admin, admin.locator("form[action$='/refresh'] button"))
        clock.wait(DAY)
    admin.goto(base + "/admin/dashboard")
    if "/admin/sign-in" in admin.url:
        flows.sign_in(admin, codes)


def enroll(browser: Any, base: str, link: str, lang: str, out: Path) -> None:
    """The new hire at a desk, with the same scan page looked at on a phone."""
    context = flows.new_context(browser, viewport=flows.DESK)
    flows.set_language(context, base, lang)
    page = context.new_page()
    page.goto(link)
    shoot(page, out, f"landing-{lang}")
    flows.click_and_wait(page, page.locator("button.enroll-start"))
    shoot(page, out, f"scan-{lang}")

    phone = flows.new_context(browser, viewport=flows.PHONE, is_mobile=True, has_touch=True)
    phone.add_cookies(context.cookies())  # the same enrollment session, seen on a phone
    phone_page = phone.new_page()
    phone_page.goto(base + "/enroll")
    shoot(phone_page, out, f"scan-phone-{lang}")
    phone.close()

    seed = str(page.locator("#secret").get_attribute("data-copy-value"))
    first, second = flows.enrollment_pair(seed)
    page.locator("#f-code1").fill(first)
    page.locator("#f-code2").fill(second)
    flows.click_and_wait(page, page.locator("form.enroll-codes button"))
    assert page.url.endswith("/enroll/done"), page.url
    shoot(page, out, f"done-{lang}")
    context.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))

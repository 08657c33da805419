"""The journey's steps driven through the pages, shared by the browser tests and the screenshots.

Everything goes through the UI: fields are found by their labels, buttons by their names; the
TOTP seeds are read from the pages and the codes computed with pyotp, as a phone app would.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pyotp

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
LANG_COOKIE = "iam_onboard_lang"
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 800}


# A step that broke fails in seconds rather than after Playwright's 30 s default.
TIMEOUT_MS = 15_000


def new_context(browser: Any, *, axe_source: str | None = None, **options: Any) -> Any:
    """A browser context of its own (no cookie shared); with axe-core on every page if given."""
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    if axe_source:
        # An init script, not a <script> in the page: the portal's CSP forbids inline scripts.
        context.add_init_script(axe_source)
    return context


def current_step() -> int:
    return int(time.time() // 30)


class DemoClock:
    """The demo's time: its sandbox's clock, which its portal runs on (app/sandbox/totp.py).

    Without the sandbox's address it is the real time, and waiting is sleeping (screenshots).
    """

    def __init__(self, iam_url: str | None = None):
        self.url = iam_url and iam_url + "/moto-api/iam-onboard/clock"

    def time(self) -> float:
        if not self.url:
            return time.time()
        return datetime.fromisoformat(httpx.get(self.url).json()["now"]).timestamp()

    def wait(self, seconds: float) -> None:
        """Let `seconds` pass: moves the demo's clock on rather than waiting for it."""
        if not self.url:
            time.sleep(seconds)
            return
        httpx.post(self.url, data={"advance_seconds": str(seconds)}).raise_for_status()


def _oldest_safe_step(oldest_accepted: int, now: float) -> int:
    """oldest_accepted steps back from now, unless it leaves the portal's window in a moment."""
    step = int(now // 30)
    seconds_left = 30 - now % 30
    return step + (oldest_accepted if seconds_left > 3 else oldest_accepted + 1)


class AdminCodes:
    """The admin's authenticator: the portal takes each 30-second step at most once.

    The portal accepts codes a step around its clock; each code here is the oldest one still
    accepted, so that the journey's step-ups (sign-in, reset, offboard) rarely wait for a
    new step.
    """

    def __init__(self, seed: str, clock: DemoClock | None = None):
        self.totp = pyotp.TOTP(seed)
        self.clock = clock or DemoClock()
        self.last_step: int | None = None

    def setup_pair(self) -> tuple[str, str]:
        first = _oldest_safe_step(-2, self.clock.time())  # setup takes pairs up to 2 steps old
        self.last_step = first + 1  # the setup spends both steps of the pair
        return self.totp.generate_otp(first), self.totp.generate_otp(first + 1)

    def next(self) -> str:
        """A code of a step not used yet; waits for the clock when the next one is too far."""
        while True:
            now = self.clock.time()
            wanted = _oldest_safe_step(-1, now)
            if self.last_step is not None:
                wanted = max(wanted, self.last_step + 1)
            if wanted <= int(now // 30) + 1:  # one step ahead of the clock, no further
                break
            self.clock.wait(30 - now % 30 + 0.2)
        self.last_step = wanted
        return str(self.totp.generate_otp(wanted))


def enrollment_pair(seed: str) -> tuple[str, str]:
    """Two consecutive codes as an authenticator shows them: the previous one and the current."""
    totp = pyotp.TOTP(seed)
    step = current_step()
    return totp.generate_otp(step - 1), totp.generate_otp(step)


def sandbox_iam(iam_url: str) -> Any:
    """boto3 on the demo's sandbox, as an operator's AWS CLI would see it (any key works)."""
    import boto3

    return boto3.client(
        "iam",
        endpoint_url=iam_url,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )


def set_language(context: Any, base_url: str, lang: str) -> None:
    """What the language switcher stores: the portal's language cookie."""
    context.add_cookies([{"name": LANG_COOKIE, "value": lang, "url": base_url}])


def click_and_wait(page: Any, target: Any) -> None:
    """Click something that submits or follows a link and wait for the next page to load."""
    with page.expect_navigation():
        target.click()


def accept_confirms(page: Any) -> None:
    """Destructive forms ask window.confirm() first; a person clicks OK."""
    page.on("dialog", lambda dialog: dialog.accept())


# -- the admin ----------------------------------------------------------------------------------
def set_up_admin(
    page: Any, setup_link: str, password: str = ADMIN_PASSWORD, clock: DemoClock | None = None
) -> AdminCodes:
    """The setup link's two pages: a password, then the app (seed read from the page)."""
    page.goto(setup_link)
    page.get_by_label("New password").fill(password)
    page.get_by_label("The same password again").fill(password)
    click_and_wait(page, page.get_by_role("button", name="Continue"))
    assert page.url.endswith("/admin/setup/totp"), page.url
    codes = AdminCodes(page.locator("#totp-secret").inner_text().replace(" ", ""), clock)
    first, second = codes.setup_pair()
    page.get_by_label("First code").fill(first)
    page.get_by_label("Next code (after it changes)").fill(second)
    click_and_wait(page, page.get_by_role("button", name="Finish setup"))
    assert "/admin/sign-in" in page.url, page.url
    return codes


def sign_in(
    page: Any, codes: AdminCodes, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD
) -> None:
    if "/admin/sign-in" not in page.url:
        page.goto(page.url.split("/admin")[0] + "/admin/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    click_and_wait(page, page.get_by_role("button", name="Continue"))
    assert page.url.endswith("/admin/sign-in/code"), page.url
    page.get_by_label("Code", exact=True).fill(codes.next())
    click_and_wait(page, page.get_by_role("button", name="Sign in"))
    assert "/admin/dashboard" in page.url, page.url


def invite(page: Any, base_url: str, user_name: str, email: str, note: str = "") -> str:
    """The invite form; returns the one-time link shown on the result page."""
    page.goto(base_url + "/admin/invite")
    page.get_by_label("IAM user name").fill(user_name)
    page.get_by_label("Their email address").fill(email)
    if note:
        page.get_by_label("Note for the new hire (optional)").fill(note)
    click_and_wait(page, page.get_by_role("button", name="Create the user and the invitation"))
    link = str(page.locator("#invite-link").inner_text()).strip()
    assert re.fullmatch(re.escape(base_url) + r"/enroll/[\w-]{43}", link), link
    return link


def dashboard_status(page: Any, base_url: str, user_name: str) -> str:
    """The user's status on the dashboard, refreshed from AWS when the saved copy predates it."""
    page.goto(base_url + "/admin/dashboard")

    def row() -> Any:
        link = page.get_by_role("link", name=user_name, exact=True)
        return page.get_by_role("row").filter(has=link)

    if row().count() == 0:
        click_and_wait(page, page.get_by_role("button", name="Refresh from AWS"))
    assert row().count() == 1, f"{user_name} is not on the dashboard"
    return str(row().locator(".status").inner_text()).strip()


def open_user(page: Any, base_url: str, user_name: str) -> None:
    dashboard_status(page, base_url, user_name)
    click_and_wait(page, page.get_by_role("link", name=user_name, exact=True))
    assert page.get_by_role("heading", level=1).inner_text().startswith(user_name)


# -- the new hire -------------------------------------------------------------------------------
@dataclass
class Enrolled:
    seed: str
    user_name: str
    temp_password: str | None


def start_enrollment(page: Any, link: str) -> str:
    """Landing page, Start; returns the seed shown on the scan page (the key to type by hand)."""
    page.goto(link)
    click_and_wait(page, page.get_by_role("button", name="Start"))
    assert page.url.endswith("/enroll"), page.url
    seed = str(page.locator("#secret").get_attribute("data-copy-value"))
    assert re.fullmatch(r"[A-Z2-7]{16,}", seed), "no TOTP key on the scan page"
    return seed


def type_codes(page: Any, seed: str) -> None:
    first, second = enrollment_pair(seed)
    page.get_by_label("Code shown now").fill(first)
    page.get_by_label("The next code").fill(second)
    click_and_wait(page, page.get_by_role("button", name="Check the codes"))


def enroll(page: Any, link: str) -> Enrolled:
    """The whole enrollment from the link to the done page."""
    seed = start_enrollment(page, link)
    type_codes(page, seed)
    assert page.url.endswith("/enroll/done"), page.url
    password = page.locator("#temp-password")
    return Enrolled(
        seed=seed,
        user_name=str(page.locator("#user-name").inner_text()),
        temp_password=str(password.inner_text()) if password.count() else None,
    )


def invite_by_cli(demo: Any, name: str) -> str:
    """`iam-onboard invite` in the demo, as an admin at a terminal would: the enrollment link."""
    made = demo.cli("invite", name, "--email", f"{name}@example.com")
    assert made.returncode == 0, made.stderr
    return str(made.stdout.split()[-1])

"""A Korean browser (Accept-Language: ko) walks the whole journey and reads no English sentence.

Every page of the new hire's enrollment and of the admin console is read as a person sees it:
the text between the tags, without code blocks, secrets and form values. What is left may hold
names (users, groups, the account, email addresses), links, AWS ARNs and the product's and AWS's
own names, but never three English words in a row.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.sandbox import Sandbox
from app.services import enrollment
from app.services.admins import create_admin
from app.services.invitations import invite_user
from app.services.outbox import read_mail
from app.services.portal import CLI_ACTOR, Actor, Portal
from app.store.models import OutboxMail
from tests.helpers import CLI, Clock, clean_env, csrf_of, seed_of, totp_at

BASE = "http://portal.test"
KOREAN = {"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.8"}
ADMIN = "ada@example.com"
PASSWORD = "correct horse battery staple"
HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Names that are not sentences: apps, the product, and any token that is clearly data.
KEPT = re.compile(
    r"Google Authenticator|Microsoft Authenticator|1Password|Authy|iam-onboard|"
    r"arn:aws:\S+|https?://\S+|otpauth://\S+|[\w.+-]+@[\w.-]+"
)
ENGLISH_WORD = re.compile(r"[(\"'“]*[A-Za-z][a-z'’-]*[)\"'”.,;:!?]*")
ACRONYM = re.compile(r"[(\"'“]*[A-Z][A-Z0-9]+s?[)\"'”.,;:!?]*")


class VisibleText(HTMLParser):
    """Text a person reads on the page; code, secrets and form values are left out."""

    SKIPPED = {"script", "style", "code", "pre", "textarea"}
    VOID = {"input", "br", "img", "meta", "link", "hr", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[bool] = []  # per open element: is its content left out?
        self.lang: str | None = None
        self.glued = False  # after a <wbr>: the text goes on, no space between

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "wbr":
            self.glued = True
        if tag == "html":
            self.lang = values.get("lang")
        for name in ("aria-label", "title", "alt", "placeholder"):
            if values.get(name):
                self.parts.append(str(values[name]))
        if tag in self.VOID:
            return
        classes = (values.get("class") or "").split()
        skipped = tag in self.SKIPPED or "secret" in classes
        self.stack.append(skipped or bool(self.stack and self.stack[-1]))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        glued, self.glued = self.glued, False
        if not (self.stack and self.stack[-1]):
            if glued and self.parts:
                self.parts[-1] += data
            else:
                self.parts.append(data)


def visible(html: str) -> VisibleText:
    parser = VisibleText()
    parser.feed(html)
    return parser


def english_runs(text: str, names: set[str]) -> list[str]:
    """Every run of 3+ English words in `text`, once names and kept words are taken out."""
    text = KEPT.sub(" | ", text)
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", " | ", text)
    runs, current = [], []
    for token in text.split():
        if ENGLISH_WORD.fullmatch(token) and not ACRONYM.fullmatch(token):
            current.append(token)
            continue
        if len(current) >= 3:
            runs.append(" ".join(current))
        current = []
    if len(current) >= 3:
        runs.append(" ".join(current))
    return runs


def test_the_english_detector_finds_sentences_and_spares_names():
    names = {"jimin", "Developers"}
    assert english_runs("이메일을 확인해 주세요. Please try again.", names) == ["Please try again."]
    assert english_runs("jimin Developers 사용자 AWS MFA IAM QR 코드", names) == []
    assert english_runs("Google Authenticator, Microsoft Authenticator 또는 Authy", names) == []
    assert english_runs("iam.create_user · 2024-01-01 · enrollee:jimin", names) == []


class KoreanReader:
    """A browser that asks for Korean; every page it opens is checked for English sentences."""

    def __init__(self, client: TestClient, names: set[str]):
        self.client = client
        self.names = names
        self.pages: list[str] = []

    def read(self, r: httpx.Response, *, status: int = 200) -> httpx.Response:
        if r.request.method == "POST" and r.status_code == 303 and status != 303:
            # Post/Redirect/Get: the answer to a form is the page its redirect leads to.
            r = self.client.get(r.headers["location"], follow_redirects=False)
        assert r.status_code == status, r.text
        page = visible(r.text)
        assert page.lang == "ko", f"{r.request.url} is not marked as Korean"
        text = " ".join(page.parts)
        assert HANGUL.search(text), f"{r.request.url} shows no Korean at all"
        runs = english_runs(text, self.names)
        assert runs == [], f"English on {r.request.url}: {runs}"
        self.pages.append(urlsplit(str(r.request.url)).path)
        return r

    def get(self, url: str, *, status: int = 200) -> httpx.Response:
        return self.read(self.client.get(url, follow_redirects=False), status=status)

    def post(self, url: str, data: dict[str, str]) -> httpx.Response:
        return self.client.post(url, data=data, follow_redirects=False)


@pytest.fixture
def reader(portal: Portal) -> Iterator[KoreanReader]:
    names = {"jimin", "minjun", "Developers", "ReadOnly", "MFA", "123456789012", "cli"}
    with TestClient(create_app(portal), base_url=BASE, headers=KOREAN) as client:
        yield KoreanReader(client, names)


def codes_now(seed: str) -> tuple[str, str]:
    """The previous step's code and the current one, as the phone showed them."""
    step = int(time.time()) // 30
    totp = pyotp.TOTP(seed)
    return totp.at((step - 1) * 30), totp.at(step * 30)


def test_a_new_hire_reads_every_enrollment_page_in_korean(portal: Portal, reader: KoreanReader):
    reader.get("/")
    link = invite_user(
        portal,
        user_name="jimin",
        email="jimin@example.com",
        extra_groups=["Developers"],
        note="환영합니다!",
        actor=Actor("boss@example.com"),
    ).link
    path = urlsplit(link).path
    landing = reader.get(path)
    assert "jimin" in landing.text

    r = reader.post(path, {"csrf_token": csrf_of(landing.text)})
    assert r.status_code == 303 and r.headers["location"] == "/enroll", r.text
    scan = reader.get("/enroll")
    secret = re.search(r'<code class="secret" id="secret"[^>]*>([^<]+)</code>', scan.text)
    assert secret, "the scan page shows no secret"
    seed = secret.group(1).replace(" ", "")

    wrong = reader.post(
        "/enroll/verify", {"csrf_token": csrf_of(scan.text), "code1": "000000", "code2": "000001"}
    )
    wrong = reader.read(wrong, status=400)
    assert 'role="alert"' in wrong.text or "error-text" in wrong.text
    typo = reader.post(
        "/enroll/verify", {"csrf_token": csrf_of(scan.text), "code1": "12", "code2": "34"}
    )
    reader.read(typo, status=400)

    done = reader.post("/enroll/verify", {"csrf_token": csrf_of(scan.text), **pair(seed)})
    assert done.status_code == 303 and done.headers["location"] == "/enroll/done", done.text
    first = reader.get("/enroll/done")
    assert 'id="temp-password"' in first.text
    reader.get("/enroll/done")  # the second view: "already shown"

    reader.get(path, status=404)  # the used link
    reader.get("/enroll/not-a-real-token", status=404)
    reader.get("/this/page/does/not/exist", status=404)

    # The mail to the inviting admin was written in the language of the moment: Korean.
    with portal.db.session() as s:
        [row] = s.scalars(select(OutboxMail)).all()
        notice = read_mail(portal, row)
    assert HANGUL.search(notice.subject)
    assert english_runs(notice.text_body, reader.names | {"boss@example.com"}) == []


def pair(seed: str) -> dict[str, str]:
    code1, code2 = codes_now(seed)
    return {"code1": code1, "code2": code2}


def enroll_after_one_wrong_try(portal: Portal, name: str) -> None:
    """An enrollment through the services (real time), so the user page has its records."""
    link = invite_user(portal, user_name=name, email=f"{name}@example.com", actor=CLI_ACTOR).link
    person = Actor("web", "203.0.113.9")
    enrollment_id = enrollment.start_enrollment(portal, token=link.rsplit("/", 1)[1], actor=person)
    enrollment.prepare_device(portal, enrollment_id=enrollment_id, actor=person)
    scan = enrollment.enrollment_view(portal, enrollment_id=enrollment_id).scan
    assert scan is not None
    with pytest.raises(enrollment.CodeRejected):
        enrollment.verify_codes(
            portal, enrollment_id=enrollment_id, code1="000000", code2="000001", actor=person
        )
    code1, code2 = codes_now(scan.seed)
    enrollment.verify_codes(
        portal, enrollment_id=enrollment_id, code1=code1, code2=code2, actor=person
    )


def test_an_admin_reads_every_console_page_in_korean(portal: Portal, reader: KoreanReader):
    enroll_after_one_wrong_try(portal, "jimin")
    clock = Clock()
    portal.clock = clock
    setup_path = urlsplit(create_admin(portal, email=ADMIN, actor=CLI_ACTOR).link).path

    page = reader.get(setup_path)
    short = reader.post(
        setup_path,
        {"csrf_token": csrf_of(page.text), "password": "short", "password_confirm": "short"},
    )
    reader.read(short, status=400)
    r = reader.post(
        setup_path,
        {"csrf_token": csrf_of(page.text), "password": PASSWORD, "password_confirm": PASSWORD},
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/setup/totp", r.text
    totp_page = reader.get("/admin/setup/totp")
    seed = seed_of(totp_page.text)
    wrong = reader.post(
        "/admin/setup/totp",
        {"csrf_token": csrf_of(totp_page.text), "code1": "000000", "code2": "000001"},
    )
    reader.read(wrong, status=400)
    r = reader.post(
        "/admin/setup/totp",
        {
            "csrf_token": csrf_of(totp_page.text),
            "code1": totp_at(seed, clock.step() - 1),
            "code2": totp_at(seed, clock.step()),
        },
    )
    assert r.status_code == 303, r.text

    sign_in = reader.get(r.headers["location"])  # with the "your account is ready" message
    refused = reader.post(
        "/admin/sign-in",
        {"csrf_token": csrf_of(sign_in.text), "email": ADMIN, "password": "not the password"},
    )
    reader.read(refused, status=400)
    r = reader.post(
        "/admin/sign-in",
        {"csrf_token": csrf_of(sign_in.text), "email": ADMIN, "password": PASSWORD},
    )
    assert r.status_code == 303, r.text
    clock.advance(seconds=30)
    code_page = reader.get("/admin/sign-in/code")
    r = reader.post(
        "/admin/sign-in/code",
        {"csrf_token": csrf_of(code_page.text), "code": totp_at(seed, clock.step())},
    )
    assert r.status_code == 303, r.text

    dashboard = reader.get("/admin/dashboard")
    r = reader.post("/admin/dashboard/refresh", {"csrf_token": csrf_of(dashboard.text)})
    assert r.status_code == 303, r.text
    reader.get(r.headers["location"])  # with the "refreshed" notice and the statuses

    invite_page = reader.get("/admin/invite")
    refused_name = reader.post(
        "/admin/invite",
        {"csrf_token": csrf_of(invite_page.text), "user_name": "bad name!", "email": "x"},
    )
    reader.read(refused_name, status=400)
    created = reader.post(
        "/admin/invite",
        {
            "csrf_token": csrf_of(invite_page.text),
            "user_name": "minjun",
            "email": "minjun@example.com",
            "groups": "ReadOnly",
        },
    )
    reader.read(created)
    r = reader.post("/admin/dashboard/refresh", {"csrf_token": csrf_of(dashboard.text)})
    reader.get(r.headers["location"])
    reader.get("/admin/dashboard?status=invited")
    reader.get("/admin/users/minjun")
    enrolled = reader.get("/admin/users/jimin")  # its timeline: a wrong try, then enrollment
    assert "enroll.verify" in enrolled.text and "iam.create_login_profile" in enrolled.text
    reader.get("/admin/users/nobody-here", status=404)

    outbox = reader.get("/admin/outbox")
    mail_id = re.search(r'href="/admin/outbox/(\d+)"', outbox.text)
    assert mail_id, "the outbox lists no mail"
    reader.get(f"/admin/outbox/{mail_id.group(1)}")
    # The invitation went out in the inviting admin's language.
    with portal.db.session() as s:
        row = s.scalars(select(OutboxMail).where(OutboxMail.to == "minjun@example.com")).one()
        mail = read_mail(portal, row)
    assert HANGUL.search(mail.subject) and HANGUL.search(mail.text_body)
    names = reader.names | {"minjun@example.com", ADMIN}
    assert english_runs(mail.text_body, names) == []
    assert english_runs(" ".join(visible(mail.html_body or "").parts), names) == []

    # The lifecycle pages: a new link, then what a reset and an offboarding would do.
    user_page = reader.get("/admin/users/minjun")
    reader.read(reader.post("/admin/users/minjun/resend", {"csrf_token": csrf_of(user_page.text)}))
    reader.get("/admin/users/minjun")  # its timeline now says the old link is dead
    reader.get("/admin/users/jimin/reset-mfa")
    reader.get("/admin/users/minjun/offboard")
    reader.get("/admin/audit")
    reader.get("/admin/audit?action=enroll")


def test_the_switcher_remembers_korean_without_the_header(portal: Portal):
    with TestClient(create_app(portal), base_url=BASE) as client:
        home = client.get("/")
        assert visible(home.text).lang == "en"
        assert "Administrators: sign in" in home.text
        r = client.post(
            "/language",
            data={"csrf_token": csrf_of(home.text), "language": "ko", "next": "/admin/sign-in"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/admin/sign-in"
        assert "iam_onboard_lang=ko" in r.headers["set-cookie"]
        assert "Max-Age=" in r.headers["set-cookie"]
        for url in ("/", "/admin/sign-in"):
            page = client.get(url)
            reader = KoreanReader(client, set())
            reader.read(page)
        # The choice beats the browser's own preference, and can be taken back.
        english_browser = client.get("/", headers={"Accept-Language": "en-US,en"})
        assert visible(english_browser.text).lang == "ko"
        client.post(
            "/language",
            data={"csrf_token": csrf_of(english_browser.text), "language": "en", "next": "/"},
        )
        assert visible(client.get("/", headers=KOREAN).text).lang == "en"


@pytest.mark.slow  # starts iam-onboard processes
def test_the_cli_speaks_korean_under_a_korean_lang(portal: Portal, aws: Sandbox):
    env = clean_env(
        LANG="ko_KR.UTF-8",
        IAM_ONBOARD_DATABASE_URL=portal.settings.database_url,
        IAM_ONBOARD_BASE_URL=BASE,
        AWS_ENDPOINT_URL_IAM=aws.url,
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    invited = cli("invite", "hana", "--email", "hana@example.com")
    assert invited.returncode == 0, invited.stderr
    *sentences, link = invited.stdout.strip().splitlines()
    # The link stays alone on its line, exactly as a script would read it.
    assert link.startswith(BASE + "/enroll/") and " " not in link
    assert sentences and all(HANGUL.search(line) for line in sentences)
    names = {"hana", "hana@example.com"}
    assert english_runs(" ".join(sentences), names) == []

    again = cli("invite", "hana", "--email", "hana@example.com")
    assert again.returncode == 1
    assert again.stderr.startswith("iam-onboard: ") and HANGUL.search(again.stderr)
    assert english_runs(again.stderr, names) == []

    helped = cli("invite", "--help")
    assert "신규 입사자의 이메일 주소" in helped.stdout  # the --email option's help

    status = cli("status", "--json")  # machine output stays as it is, in English
    assert json.loads(status.stdout)[0]["status"] == "invited"

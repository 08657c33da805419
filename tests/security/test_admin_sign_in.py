"""Attacks on admin sign-in (issue 13, point 7), each against a real server on 127.0.0.1.

- lock an admin out from another address with wrong passwords;
- tell a real admin email from an unknown one by the lockout answer;
- exhaust memory with concurrent wrong sign-ins (argon2 takes 64 MiB a hash);
- choose `aaaaaaaaaaaa` as an admin password.

A client at another loopback address binds its source address (127.0.0.2, 127.0.0.3): the
server sees each as a client of its own, as it would two machines.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx
import pytest

from app.services.admins import LOCK_THRESHOLD, create_admin
from app.services.portal import CLI_ACTOR, Portal
from tests.helpers import (
    ADMIN_PASSWORD,
    Clock,
    admin_setup_link,
    answer_of,
    csrf_of,
    serve_in_thread,
    set_up_admin,
)
from tests.security.support import RunningDemo

ADA = "ada@example.com"
NO_MATCH = "This email address and password do not match an admin account."
LOCKED = "This account is locked for now after too many failed sign-ins"


def _client_at(url: str, address: str) -> httpx.Client:
    return httpx.Client(
        base_url=url, transport=httpx.HTTPTransport(local_address=address), timeout=60
    )


def _sign_in(client: httpx.Client, email: str, password: str) -> httpx.Response:
    """The answer as the browser shows it: a refusal after its redirect (Post/Redirect/Get),
    the way on to the code step as the 303 itself."""
    page = client.get("/admin/sign-in")
    r = client.post(
        "/admin/sign-in",
        data={"csrf_token": csrf_of(page.text), "email": email, "password": password},
    )
    if r.status_code == 303 and r.headers["location"] == "/admin/sign-in":
        return answer_of(client, r)
    return r


def _ada(portal: Portal, url: str, clock: Clock) -> None:
    link = create_admin(portal, email=ADA, actor=CLI_ACTOR).link
    with httpx.Client(base_url=url) as client:
        set_up_admin(client, link.removeprefix("http://portal.test"), clock)


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_wrong_passwords_from_one_address_do_not_lock_the_admin_out_at_another(
    portal: Portal,
) -> None:
    clock = Clock()
    portal.clock = clock
    with serve_in_thread(portal) as url:
        _ada(portal, url, clock)
        with _client_at(url, "127.0.0.2") as attacker:
            answers = [_sign_in(attacker, ADA, f"guess {n}").status_code for n in range(12)]
            # The attacker's own address is locked out of the account...
            assert answers == [400] * (LOCK_THRESHOLD - 1) + [429] * 3
            assert _sign_in(attacker, ADA, ADMIN_PASSWORD).status_code == 429
        with _client_at(url, "127.0.0.3") as ada:
            r = _sign_in(ada, ADA, ADMIN_PASSWORD)
            # ...Ada, elsewhere, reaches the code step.
            assert r.status_code == 303 and r.headers["location"] == "/admin/sign-in/code"
            assert 'name="code"' in ada.get("/admin/sign-in/code").text


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_known_and_unknown_emails_answer_alike(portal: Portal) -> None:
    clock = Clock()
    portal.clock = clock
    with serve_in_thread(portal) as url:
        _ada(portal, url, clock)
        with _client_at(url, "127.0.0.2") as attacker:
            known = [_sign_in(attacker, ADA, f"guess {n}") for n in range(12)]
            unknown = [_sign_in(attacker, "eve@example.com", f"guess {n}") for n in range(12)]
            # After the first lock, the next failure locks longer: for both, and alike.
            clock.advance(minutes=16)
            known.append(_sign_in(attacker, ADA, "one more"))
            unknown.append(_sign_in(attacker, "eve@example.com", "one more"))
    assert [r.status_code for r in known] == [r.status_code for r in unknown]

    def page(r: httpx.Response, email: str) -> str:
        """The answer without what differs by design: the email typed and the form's token."""
        return re.sub(r'value="[^"]{20,}"', "TOKEN", r.text).replace(email, "EMAIL")

    for k, u in zip(known, unknown, strict=True):
        assert page(k, ADA) == page(u, "eve@example.com")
    assert LOCKED in known[-1].text


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match
    return int(match.group(1))


@pytest.mark.slow  # seconds of argon2 hashing or retries: make test runs it, test-fast not
def test_sixteen_concurrent_wrong_sign_ins_do_not_pile_up_memory(tmp_path: Path) -> None:
    demo = RunningDemo(tmp_path)
    try:
        admin_setup_link(demo.output)  # the demo is up, its admin waiting
        with httpx.Client(base_url=demo.url) as warm:
            _sign_in(warm, "warm-up@example.com", "not the password at all")
        before = _peak_rss_kib(demo.demo.process.pid)
        answers: list[int] = []

        def wrong_sign_in(n: int) -> None:
            with httpx.Client(base_url=demo.url, timeout=120) as client:
                answers.append(_sign_in(client, f"x{n}@example.com", "wrong password").status_code)

        threads = [threading.Thread(target=wrong_sign_in, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        grown_mib = (_peak_rss_kib(demo.demo.process.pid) - before) / 1024
    finally:
        demo.stop()
    assert answers == [400] * 16
    # Sixteen 64 MiB hashes at once would take a gigabyte; a few at a time, a few hundred MiB.
    assert grown_mib < 400, f"the server grew by {grown_mib:.0f} MiB"


@pytest.mark.parametrize("password", ["aaaaaaaaaaaa", "password1234", "Qwerty123456"])
def test_a_common_password_is_refused_for_an_admin(portal: Portal, password: str) -> None:
    link = create_admin(portal, email=ADA, actor=CLI_ACTOR).link.removeprefix("http://portal.test")
    with serve_in_thread(portal) as url, httpx.Client(base_url=url) as client:
        page = client.get(link)
        r = client.post(
            link,
            data={
                "csrf_token": csrf_of(page.text),
                "password": password,
                "password_confirm": password,
            },
        )
        r = answer_of(client, r)
    assert r.status_code == 400
    assert "This password is common or easy to guess" in r.text

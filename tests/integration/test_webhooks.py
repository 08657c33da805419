"""Notifications posted to a real HTTP receiver on loopback (a tiny http.server in a thread).

The portal runs on the sandbox; the new hire's pages are driven over HTTP. What is checked is
what the receiving chat or endpoint gets: one message per event, in the configured format,
signed when a secret is set, retried after a failure, and never holding a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.services.bootstrap import bootstrap
from app.services.housekeeping import run_housekeeping
from app.services.invitations import invite_user
from app.services.lifecycle.adoption import invite_existing_user
from app.services.lifecycle.offboarding import offboard
from app.services.portal import CLI_ACTOR, Actor, Portal
from app.store.models import WebhookMessage, utcnow
from tests.conftest import make_portal
from tests.helpers import Clock, csrf_of
from tests.integration.lifecycle_support import enroll
from tests.integration.test_enroll import password_of, pyotp_pair, secret_of

ADMIN = Actor("admin@example.com")
SECRET = "webhook-signing-secret-for-tests"


@dataclass
class Post:
    path: str
    headers: Message  # case-insensitive, as HTTP headers are
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Collects what is posted. `status` is what it answers; while `hold` is clear it keeps
    each request waiting (a slow chat service)."""

    url: str = ""
    posts: list[Post] = field(default_factory=list)
    status: int = 200
    hold: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 15) -> list[Post]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= count, timeout=timeout)
            assert len(self.posts) >= count, self.posts
            return list(self.posts)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()
    got.hold.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.hold.wait(timeout=30)
            with got.arrived:
                got.posts.append(Post(self.path, self.headers, body))
                got.arrived.notify_all()
            self.send_response(got.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        got.hold.set()
        server.shutdown()
        server.server_close()


def hooked(aws: Any, sqlite_url: str, receiver: Receiver, **settings: Any) -> Portal:
    p = make_portal(aws, sqlite_url, webhook_url=receiver.url, **settings)
    bootstrap(p, dry_run=False, actor=CLI_ACTOR)
    return p


def messages(portal: Portal) -> list[WebhookMessage]:
    with portal.db.session() as s:
        return list(s.scalars(select(WebhookMessage).order_by(WebhookMessage.id)))


def wait_delivered(portal: Portal, count: int, timeout: float = 15) -> list[WebhookMessage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = messages(portal)
        if len(rows) >= count and all(r.sent_at for r in rows):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"not delivered: {messages(portal)}")


def assert_no_secret(posts: list[Post], secrets: list[str]) -> None:
    for post in posts:
        everything = post.body.decode() + str(post.headers) + post.path
        for secret in secrets:
            assert secret not in everything, secret


# -- the lock ---------------------------------------------------------------------------------
def test_an_enrollment_that_locks_after_five_wrong_tries_posts_one_signed_message(
    aws, sqlite_url, receiver: Receiver
):  # type: ignore[no-untyped-def]
    portal = hooked(aws, sqlite_url, receiver, webhook_format="json", webhook_secret=SECRET)
    link = invite_user(portal, user_name="alice", email="alice@example.com", actor=ADMIN).link
    path = urlsplit(link).path
    codes: list[str] = []
    with TestClient(create_app(portal)) as hire:
        page = hire.get(path)
        hire.post(path, data={"csrf_token": csrf_of(page.text)})
        scan = hire.get("/enroll")
        seed = secret_of(scan.text)
        for attempt in range(6):  # five wrong pairs lock it; the sixth is refused as locked
            wrong = pyotp_pair(pyotp.random_base32(64))
            codes.extend(wrong)
            form = {"csrf_token": csrf_of(scan.text), "code1": wrong[0], "code2": wrong[1]}
            r = hire.post("/enroll/verify", data=form)
            assert r.status_code == (400 if attempt < 4 else 403), r.text
    wait_delivered(portal, 1)
    run_housekeeping(portal, holder="test")  # a retry pass finds nothing left to post
    (post,) = receiver.wait_for(1)
    time.sleep(0.2)  # anything posted twice would have arrived by now
    assert len(receiver.posts) == 1 and len(messages(portal)) == 1

    body = post.json
    assert body["event"] == "enrollment.locked" and body["user"] == "alice"
    assert "alice" in body["text"] and "locked" in body["text"]
    assert body["portal"] == "http://portal.test"
    assert post.path == "/hooks/T000/B000"
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["X-IAM-Onboard-Event"] == "enrollment.locked"
    # The receiver checks the signature with the shared secret: HMAC-SHA256 of "<ts>." + body.
    timestamp = post.headers["X-IAM-Onboard-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + post.body, hashlib.sha256)
    assert post.headers["X-IAM-Onboard-Signature"] == "sha256=" + expected.hexdigest()
    token = path.rsplit("/", 1)[1]
    assert_no_secret(receiver.posts, [seed, token, SECRET, "alice@example.com", *codes])
    portal.db.dispose()


# -- enrolled: Slack's format, and a slow receiver ----------------------------------------------
def test_enrolled_is_posted_in_slacks_format_and_a_slow_receiver_does_not_hold_the_page(
    aws, sqlite_url, receiver: Receiver
):  # type: ignore[no-untyped-def]
    portal = hooked(aws, sqlite_url, receiver)  # the default format: slack, unsigned
    link = invite_user(portal, user_name="bob", email="bob@example.com", actor=ADMIN).link
    path = urlsplit(link).path
    receiver.hold.clear()  # the chat service takes its time answering
    with TestClient(create_app(portal)) as hire:
        page = hire.get(path)
        hire.post(path, data={"csrf_token": csrf_of(page.text)})
        scan = hire.get("/enroll")
        seed = secret_of(scan.text)
        code1, code2 = pyotp_pair(seed)
        form = {"csrf_token": csrf_of(scan.text), "code1": code1, "code2": code2}
        done = hire.post("/enroll/verify", data=form)
        # The done page came while the receiver still holds the post.
        assert done.status_code == 200 and "temp-password" in done.text, done.text
        password = password_of(done.text)
        assert receiver.posts == []
    receiver.hold.set()
    (post,) = receiver.wait_for(1)
    assert post.json == {
        "text": "bob set up MFA and can now sign in to AWS (invited by admin@example.com)."
    }
    assert "X-IAM-Onboard-Signature" not in post.headers  # no secret set
    assert_no_secret([post], [seed, code1, code2, password, path.rsplit("/", 1)[1]])
    portal.db.dispose()


# -- a receiver that fails ----------------------------------------------------------------------
def test_a_failed_post_is_kept_and_retried_by_housekeeping_with_the_same_delivery_id(
    aws, sqlite_url, receiver: Receiver
):  # type: ignore[no-untyped-def]
    portal = hooked(aws, sqlite_url, receiver)
    clock = Clock()
    portal.clock = clock
    receiver.status = 500
    link = invite_user(portal, user_name="carl", email="carl@example.com", actor=ADMIN).link
    enroll(portal, link)
    receiver.wait_for(1)
    deadline = time.monotonic() + 10
    while messages(portal)[0].attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    (row,) = messages(portal)
    assert row.sent_at is None and row.attempts == 1 and row.last_error == "HTTP 500"
    assert receiver.url not in (row.last_error or "")

    receiver.status = 200
    run_housekeeping(portal, holder="test")  # not due yet: the backoff
    assert len(receiver.posts) == 1
    clock.advance(minutes=3)
    run_housekeeping(portal, holder="test")
    first, second = receiver.wait_for(2)
    assert first.body == second.body
    assert first.headers["X-IAM-Onboard-Delivery"] == second.headers["X-IAM-Onboard-Delivery"]
    (row,) = messages(portal)
    assert row.sent_at is not None and row.attempts == 2
    portal.db.dispose()


# -- expired, deadline passed, offboarded ------------------------------------------------------
def test_an_expired_invitation_a_passed_deadline_and_an_offboarding_are_each_told_once(
    aws, sqlite_url, receiver: Receiver, iam_client
):  # type: ignore[no-untyped-def]
    portal = hooked(aws, sqlite_url, receiver, webhook_format="json", webhook_secret=SECRET)
    iam_client.create_user(UserName="walt")
    deadline = utcnow() + timedelta(days=2)
    invite_existing_user(
        portal, user_name="walt", email="walt@example.com", deadline=deadline, actor=ADMIN
    )
    invite_user(portal, user_name="dora", email="dora@example.com", actor=ADMIN)
    portal.clock = Clock(utcnow() + timedelta(days=4))  # past the deadline and the link's life
    run_housekeeping(portal, holder="test")
    run_housekeeping(portal, holder="test")  # a second run tells nothing again
    offboard(portal, user_name="dora", actor=ADMIN)
    wait_delivered(portal, 4)
    posts = receiver.wait_for(4)
    time.sleep(0.2)  # anything posted twice would have arrived by now
    told = sorted((p.json["event"], p.json["user"]) for p in receiver.posts)
    # walt's link ran out too (his deadline is what added him to the MFA group).
    assert told == [
        ("deadline.passed", "walt"),
        ("invitation.expired", "dora"),
        ("invitation.expired", "walt"),
        ("offboarded", "dora"),
    ], told
    texts = {p.json["event"]: p.json["text"] for p in posts}
    assert "dora was offboarded by admin@example.com" in texts["offboarded"]
    assert "deadline" in texts["deadline.passed"] and "walt" in texts["deadline.passed"]
    portal.db.dispose()


def test_without_a_webhook_url_nothing_is_queued(portal: Portal):
    link = invite_user(portal, user_name="erin", email="erin@example.com", actor=ADMIN).link
    enroll(portal, link)
    assert messages(portal) == []

"""Mail over a real SMTP server on loopback (aiosmtpd): AUTH, STARTTLS, SMTPS, retries."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import re
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.security.tokens import hash_token
from app.services.admins import create_admin
from app.services.bootstrap import bootstrap
from app.services.invitations import invite_user
from app.services.notifications import send_enrolled_notice, send_invite_mail
from app.services.outbox import enqueue_mail, retry_unsent
from app.services.portal import CLI_ACTOR, Actor, Portal
from app.store.models import Invitation, OutboxMail
from tests.conftest import make_portal
from tests.helpers import Clock, answer_of, csrf_of, free_port, set_up_admin, sign_in_admin

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
ADA = "ada@example.com"
USER, PASSWORD = "mailer", "s3cret pass"


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.original_content, policy=default_policy)
        )
        self.envelopes.append(
            {
                "to": envelope.rcpt_tos,
                "authenticated": session.authenticated,
                # STARTTLS shows in the session, implicit TLS (SMTPS) in the transport.
                "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
            }
        )
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, which the test then trusts as if a CA had signed it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def start_smtp(port: int, inbox: Inbox, **options: Any) -> Controller:
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_required=True,
        **options,
    )
    controller.start()
    return controller


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def plain_smtp(inbox: Inbox, smtp_port: int) -> Iterator[str]:
    """smtp:// with AUTH (no TLS on loopback), stopped after the test."""
    controller = start_smtp(smtp_port, inbox, auth_require_tls=False)
    yield f"smtp://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{smtp_port}"
    controller.stop()


@pytest.fixture
def tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cert_file, key_file = _self_signed(tmp_path)
    # The portal verifies certificates with the default trust store; point it at ours.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    return cert_file, key_file


def _server_context(files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*files)
    return context


def _portal(aws: Any, tmp_path: Path, smtp_url: str | None) -> Portal:
    portal = make_portal(
        aws,
        f"sqlite:///{tmp_path}/mail.db",
        smtp_url=smtp_url,
        assignable_groups=["Developers"],
    )
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    portal.iam().create_group("Developers")
    portal.clock = Clock()
    return portal


@pytest.fixture
def portals(aws: Any, tmp_path: Path) -> Iterator[list[Portal]]:
    made: list[Portal] = []
    yield made
    for p in made:
        p.db.dispose()


def _web_invite(portal: Portal, **fields: Any) -> str:
    """Sign in as Ada and invite through the page; returns the result page."""
    clock = portal.clock
    assert isinstance(clock, Clock)
    with TestClient(create_app(portal), base_url="http://portal.test") as client:
        link = create_admin(portal, email=ADA, actor=CLI_ACTOR).link
        seed = set_up_admin(client, link.removeprefix("http://portal.test"), clock)
        sign_in_admin(client, ADA, seed, clock)
        page = client.get("/admin/invite")
        r = client.post(
            "/admin/invite",
            data={"csrf_token": csrf_of(page.text), "note": "", **fields},
            follow_redirects=False,
        )
        r = answer_of(client, r)  # Post/Redirect/Get
        assert r.status_code == 200, r.text
        return r.text


def _parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_the_invite_arrives_over_smtp_with_auth(aws, tmp_path, portals, plain_smtp, inbox):
    portal = _portal(aws, tmp_path, plain_smtp)
    portals.append(portal)
    page = _web_invite(
        portal,
        user_name="grace",
        email="grace@example.com",
        groups="Developers",
        note="See you on Monday.",
    )
    assert "Email sent to grace@example.com." in page
    link = re.search(r'id="invite-link">([^<]+)<', page)
    assert link

    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert inbox.envelopes[0] == {"to": ["grace@example.com"], "authenticated": True, "tls": False}
    assert msg["To"] == "grace@example.com"
    assert msg["Subject"] == "Set up your sign-in to AWS account 123456789012"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = _parts(msg)
    with portal.db.session() as s:
        inv = s.scalars(select(Invitation)).one()
        row = s.scalars(select(OutboxMail)).one()
    expiry = f"{inv.expires_at:%Y-%m-%d %H:%M} UTC"
    for body in (text, html):
        assert link.group(1) in body
        assert ADA in body  # who invited them
        assert expiry in body and "72 hours" in body
        assert "authenticator app" in body and "phone" in body
        assert "grace" in body and "See you on Monday." in body
        assert "onboarding portal" in body
    assert f'href="{link.group(1)}"' in html
    # The link in the mail is the one that opens this invitation.
    token = link.group(1).rsplit("/", 1)[1]
    assert hash_token(token) == inv.token_hash
    assert row.sent_at is not None and row.attempts == 1 and row.last_error is None
    # Delivered: the link is in the recipient's mailbox only, no longer in the outbox.
    assert row.text_body == "" and row.html_body is None and row.to == "grace@example.com"


def test_wrong_smtp_password_keeps_the_mail(aws, tmp_path, portals, plain_smtp, inbox):
    portal = _portal(aws, tmp_path, plain_smtp.replace("s3cret", "wrong"))
    portals.append(portal)
    mail_id = enqueue_mail(portal, to="x@example.com", subject="Hi", text="hello")
    assert inbox.messages == []
    with portal.db.session() as s:
        row = s.get(OutboxMail, mail_id)
        assert row is not None and row.sent_at is None
        assert row.last_error and "SMTPAuthenticationError" in row.last_error


def test_starttls_with_auth(aws, tmp_path, portals, inbox, smtp_port, tls_files):
    controller = start_smtp(
        smtp_port,
        inbox,
        tls_context=_server_context(tls_files),
        require_starttls=True,
        auth_require_tls=True,
    )
    try:
        url = f"smtp+starttls://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{smtp_port}"
        portal = _portal(aws, tmp_path, url)
        portals.append(portal)
        enqueue_mail(portal, to="x@example.com", subject="Over TLS", text="hello", html="<p>hi</p>")
    finally:
        controller.stop()
    assert [m["Subject"] for m in inbox.messages] == ["Over TLS"]
    assert inbox.envelopes[0]["authenticated"] is True and inbox.envelopes[0]["tls"] is True


def test_smtps_with_auth(aws, tmp_path, portals, inbox, smtp_port, tls_files):
    # aiosmtpd only knows TLS that STARTTLS began, so it must be told AUTH is fine here.
    controller = start_smtp(
        smtp_port, inbox, ssl_context=_server_context(tls_files), auth_require_tls=False
    )
    try:
        url = f"smtps://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{smtp_port}"
        portal = _portal(aws, tmp_path, url)
        portals.append(portal)
        enqueue_mail(portal, to="x@example.com", subject="Implicit TLS", text="hello")
    finally:
        controller.stop()
    assert [m["Subject"] for m in inbox.messages] == ["Implicit TLS"]
    assert inbox.envelopes[0]["authenticated"] is True and inbox.envelopes[0]["tls"] is True


def test_smtp_down_keeps_the_mail_and_retries_it_later(aws, tmp_path, portals, inbox, smtp_port):
    url = f"smtp://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{smtp_port}"
    portal = _portal(aws, tmp_path, url)
    portals.append(portal)
    page = _web_invite(portal, user_name="hedy", email="hedy@example.com")
    assert "Email could not be sent now; it is kept and will be retried." in page
    link = re.search(r'id="invite-link">([^<]+)<', page)
    assert link  # the admin still gets the link
    with portal.db.session() as s:
        row = s.scalars(select(OutboxMail)).one()
    assert row.sent_at is None and row.attempts == 1
    assert row.last_error and "ConnectionRefusedError" in row.last_error

    controller = start_smtp(smtp_port, inbox, auth_require_tls=False)
    try:
        assert retry_unsent(portal) == 0  # not due yet: the retry waits its backoff
        clock = portal.clock
        assert isinstance(clock, Clock)
        clock.advance(minutes=3)
        assert retry_unsent(portal) == 1
        assert retry_unsent(portal) == 0  # sent once, never twice
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    text, _html = _parts(inbox.messages[0])
    assert link.group(1) in text
    with portal.db.session() as s:
        row = s.scalars(select(OutboxMail)).one()
    assert row.sent_at is not None and row.last_error is None and row.attempts == 2


def test_the_inviting_admin_hears_when_the_new_hire_finishes(aws, tmp_path, portals, inbox):
    port = free_port()
    controller = start_smtp(port, inbox, auth_require_tls=False)
    try:
        url = f"smtp://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{port}"
        portal = _portal(aws, tmp_path, url)
        portals.append(portal)
        result = invite_user(
            portal,
            user_name="alan",
            email="alan@example.com",
            extra_groups=["Developers"],
            actor=Actor(ADA),
        )
        send_invite_mail(portal, result=result)
        with portal.db.session() as s:
            inv = s.get(Invitation, result.invitation_id)
            assert inv is not None
            inv.status, inv.used_at = "used", portal.clock()
        assert send_enrolled_notice(portal, invitation_id=result.invitation_id) is not None
        by_cli = invite_user(portal, user_name="joan", email="joan@example.com", actor=CLI_ACTOR)
        # Nobody to tell when the invite came from the command line.
        assert send_enrolled_notice(portal, invitation_id=by_cli.invitation_id) is None
    finally:
        controller.stop()
    assert [m["To"] for m in inbox.messages] == ["alan@example.com", ADA]
    notice = inbox.messages[1]
    assert notice["Subject"] == "alan has set up MFA and can sign in"
    text, html = _parts(notice)
    for body in (text, html):
        assert "alan (alan@example.com) finished the setup" in body
        assert "Extra groups granted: Developers" in body
        assert "http://portal.test/admin/users/alan" in body


def test_without_smtp_mail_waits_in_the_outbox(aws, tmp_path, portals):
    portal = _portal(aws, tmp_path, None)
    portals.append(portal)
    page = _web_invite(portal, user_name="ada.l", email="ada.l@example.com")
    assert "No mail server configured: the mail to ada.l@example.com is in the outbox." in page
    assert retry_unsent(portal) == 0
    with portal.db.session() as s:
        row = s.scalars(select(OutboxMail)).one()
    assert row.sent_at is None and row.attempts == 0 and row.last_error is None

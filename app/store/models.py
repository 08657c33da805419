"""SQLAlchemy models: invitations, enrollments, audit events, admins, sessions, API tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

from app.store.states import EnrollmentState, InvitationState


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[int]: JSON,
    }


class Invitation(Base):
    """One invitation of one IAM user; its token is kept only as a SHA-256 hash."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_name: Mapped[str] = mapped_column(String(64))
    # IAM user names are unique case-insensitively; this column makes that checkable.
    user_name_key: Mapped[str] = mapped_column(String(64), index=True)
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # app.store.states.InvitationState
    status: Mapped[str] = mapped_column(String(16), default=InvitationState.CREATING, index=True)
    extra_groups: Mapped[list[str]] = mapped_column(default=list)
    note: Mapped[str | None] = mapped_column(Text)
    invited_by: Mapped[str] = mapped_column(String(320))
    existing_user: Mapped[bool] = mapped_column(Boolean, default=False)
    replace_login_profile: Mapped[bool] = mapped_column(Boolean, default=False)
    enforce_at: Mapped[datetime | None] = mapped_column()
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    reminder_sent_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)


class Enrollment(Base):
    """The new hire's wizard state: a database row, never hidden form fields."""

    __tablename__ = "enrollments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    invitation_id: Mapped[str] = mapped_column(ForeignKey("invitations.id"), index=True)
    user_name: Mapped[str] = mapped_column(String(64))
    # app.store.states.EnrollmentState
    status: Mapped[str] = mapped_column(String(16), default=EnrollmentState.STARTED)
    device_serial: Mapped[str | None] = mapped_column(String(256))
    seed_encrypted: Mapped[str | None] = mapped_column(Text)
    device_created_at: Mapped[datetime | None] = mapped_column()
    used_steps: Mapped[list[int]] = mapped_column(default=list)
    temp_password_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    enabled_at: Mapped[datetime | None] = mapped_column()
    done_shown_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_target_at", "target_user", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_user: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # ok | failed
    source_ip: Mapped[str | None] = mapped_column(String(64))
    aws_request_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str | None] = mapped_column(Text)


class Admin(Base):
    __tablename__ = "admins"
    # An SSO admin is the provider's (issuer, subject): emails can change or be reused there.
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_admins_oidc"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)
    totp_seed_encrypted: Mapped[str | None] = mapped_column(Text)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    setup_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    setup_expires_at: Mapped[datetime | None] = mapped_column()
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime | None] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(512))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))


class SignInFailures(Base):
    """Failed admin sign-ins (and step-ups) from one client address for one email.

    Keyed by both, so wrong passwords from one address never lock the admin out at another;
    unknown emails are counted the same way as real ones, so a lock tells nothing.
    """

    __tablename__ = "sign_in_failures"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # sha256(email) + address
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime | None] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column(index=True)


class WebSession(Base):
    """A server-side session; the cookie holds an opaque id whose SHA-256 is the key here."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # app.services.sessions.TIMEOUTS: admin, admin_pending, oidc_pending, enroll
    kind: Mapped[str] = mapped_column(String(16))
    admin_id: Mapped[str | None] = mapped_column(ForeignKey("admins.id"))
    enrollment_id: Mapped[str | None] = mapped_column(ForeignKey("enrollments.id"))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What the token may do (app.services.api_tokens.SCOPES).
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class OutboxMail(Base):
    """Every mail the portal sends; retried when SMTP fails. Bodies encrypted (services/outbox)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    to: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    # When the link in it stops working: its (encrypted) bodies are emptied then, or once sent.
    expires_at: Mapped[datetime | None] = mapped_column()


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateLimit(Base):
    """Fixed-window counters shared by every replica."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column()
    count: Mapped[int] = mapped_column(Integer, default=0)


class Lease(Base):
    """A named lock with an expiry, so one replica at a time runs housekeeping."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()


class WebhookMessage(Base):
    """A notification for IAM_ONBOARD_WEBHOOK_URL; retried like mail (services/webhooks).

    `key` names the event it reports (one message per event, however often it is noticed);
    `body` is its JSON (event, user, text, at): no secret is ever put in one.
    """

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    event: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)


class DirectoryUser(Base):
    """The cached snapshot of one IAM user, rebuilt by each dashboard refresh."""

    __tablename__ = "directory_users"
    # A page of the users the portal did not invite is read off this index in order.
    __table_args__ = (Index("ix_directory_users_rank_key", "iam_rank", "user_name_key"),)

    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime | None] = mapped_column()
    password_last_used: Mapped[datetime | None] = mapped_column()
    has_password: Mapped[bool] = mapped_column(Boolean, default=False)
    in_mfa_group: Mapped[bool] = mapped_column(Boolean, default=False)
    virtual_mfa_serials: Mapped[list[str]] = mapped_column(default=list)
    mfa_active: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(32), index=True)
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What the dashboard pages, filters and counts on in SQL (app/services/directory/listing.py):
    # the name as IAM compares it (case-insensitively) and the status from IAM's facts alone;
    # a user the portal invited takes its status from the invitation at read time instead.
    user_name_key: Mapped[str | None] = mapped_column(String(64), index=True)
    iam_status: Mapped[str | None] = mapped_column(String(32))
    iam_rank: Mapped[int | None] = mapped_column(Integer)  # iam_status's place in the order


class DirectorySnapshot(Base):
    """When the directory was last refreshed, and how old the credential report was."""

    __tablename__ = "directory_snapshot"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    refreshed_at: Mapped[datetime] = mapped_column()
    report_generated_at: Mapped[datetime | None] = mapped_column()
    user_count: Mapped[int] = mapped_column(Integer, default=0)
    iam_calls: Mapped[int] = mapped_column(Integer, default=0)
    # Why the credential report could not be read (AccessDenied, not ready), shown on the page.
    report_error: Mapped[str | None] = mapped_column(Text)


class DirectoryHistory(Base):
    """The headline counts of one refresh: the dashboard's MFA coverage over time."""

    __tablename__ = "directory_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    refreshed_at: Mapped[datetime] = mapped_column(index=True)
    users: Mapped[int] = mapped_column(Integer, default=0)
    # Users with a console password (the credential report's password_enabled).
    console_users: Mapped[int] = mapped_column(Integer, default=0)
    console_with_mfa: Mapped[int] = mapped_column(Integer, default=0)
    # The credential report could not be read: console counts are unknown for this refresh.
    report_missing: Mapped[bool] = mapped_column(Boolean, default=False)

"""One Settings object for the whole portal, read from IAM_ONBOARD_* variables or a .env file."""

from __future__ import annotations

import ipaddress
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.errors import ConfigError
from app.i18n import _

# Only ever acceptable with the embedded sandbox AWS: anyone can read it here.
SANDBOX_SECRET = "sandbox-only-not-a-secret-0123456789abcdef"  # noqa: S105

# Settings that may be given as a path to a file holding the value (IAM_ONBOARD_<NAME>_FILE).
_FILE_SETTINGS = (
    "secret_key",
    "secret_key_previous",
    "database_url",
    "smtp_url",
    "metrics_token",
    "webhook_url",
    "webhook_secret",
    "oidc_client_secret",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IAM_ONBOARD_", env_file=".env", extra="ignore", validate_default=True
    )

    sandbox: bool = False
    secret_key: str = SANDBOX_SECRET
    # During a rotation of secret_key: what it was, so secrets sealed with it still open
    # (docs/deploy.md, "Rotating the app secret").
    secret_key_previous: str | None = None
    database_url: str = "sqlite:///iam-onboard.db"
    base_url: str = "http://127.0.0.1:8000"
    mfa_group: str = "MFA"
    mfa_policy: str = "MFA"
    # NoDecode: read as text, so "Developers,ReadOnly" works as well as a JSON list.
    assignable_groups: Annotated[list[str], NoDecode] = Field(default_factory=list)
    invite_ttl_hours: float = Field(default=72, gt=0, le=24 * 30)
    enrollment_ttl_minutes: float = Field(default=10, gt=0, le=24 * 60)
    reminder_after_hours: float = Field(default=24, gt=0)
    # An invite still being created after this long was cut short (a crash): housekeeping
    # finishes it. Long enough that an admin pressing Invite again is never raced.
    stuck_invite_minutes: float = Field(default=5, ge=0)
    # Link openings and exchanges per client address and minute (shared by every replica).
    enroll_rate_limit_per_minute: int = Field(default=30, ge=1)
    # How often the server runs housekeeping itself; 0 leaves it to `iam-onboard housekeeping`.
    housekeeping_interval_seconds: float = Field(default=300, ge=0)
    smtp_url: str | None = None
    mail_from: str = "iam-onboard <iam-onboard@localhost>"
    aws_region: str = "us-east-1"
    aws_connect_timeout: float = Field(default=5, gt=0)
    aws_read_timeout: float = Field(default=20, gt=0)
    aws_max_attempts: int = Field(default=3, ge=1, le=10)
    # How long the portal waits for IAM to show what it has just created (a user, an MFA
    # device, a login profile, a group membership): IAM is eventually consistent, and a call
    # naming such an entity may answer NoSuchEntity until it has replicated
    # (app/aws/propagation.py).
    iam_propagation_seconds: float = Field(default=30, ge=0, le=300)
    log_level: str = "INFO"
    # text: one readable line per record (the default); json: one JSON object per line.
    log_format: Literal["text", "json"] = "text"
    # /metrics answers only when set, and only to `Authorization: Bearer <metrics_token>`.
    metrics_token: str | None = None
    # Notifications (enrolled, locked, expired, deadline passed, offboarded) posted here:
    # `slack` is an incoming webhook's {"text": ...}; `json` a generic body signed with
    # webhook_secret (docs/deploy.md, "Notifications").
    webhook_url: str | None = None
    webhook_format: Literal["slack", "json"] = "slack"
    webhook_secret: str | None = None
    # Peers (IPs or CIDRs, comma-separated) whose X-Forwarded-For/-Proto are believed; none by
    # default: a client's address is then the one it connects from, for rate limits and audit.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Admin sign-in through an OpenID Provider (docs/architecture.md, "Admin sign-in with SSO").
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    # Who may be an admin: an email domain (from a verified email) and/or a group in the token's
    # groups claim. At least one is required with SSO: the provider alone vouches for everyone.
    oidc_allowed_domains: Annotated[list[str], NoDecode] = Field(default_factory=list)
    oidc_admin_groups: Annotated[list[str], NoDecode] = Field(default_factory=list)
    oidc_groups_claim: str = "groups"
    # The name on the sign-in button; the issuer's host name when not set.
    oidc_provider_name: str | None = None
    # Password + portal TOTP admins (break-glass); may be switched off only when SSO is set.
    local_admins: bool = True

    @field_validator("assignable_groups", mode="before")
    @classmethod
    def _split_groups(cls, value: Any) -> Any:
        # A comma-separated list reads better in an environment variable than JSON does.
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [g.strip() for g in value.split(",") if g.strip()]
        return value

    @field_validator("oidc_allowed_domains", "oidc_admin_groups", mode="before")
    @classmethod
    def _split_oidc_lists(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("oidc_allowed_domains")
    @classmethod
    def _lower_domains(cls, value: list[str]) -> list[str]:
        return [domain.lower().lstrip("@") for domain in value]

    @field_validator("oidc_issuer")
    @classmethod
    def _check_issuer(cls, value: str | None) -> str | None:
        if not value:
            return None
        # Plain http only on this machine (a provider beside the portal, or tests): anywhere
        # else the discovery document and keys could be swapped on the way.
        loopback = ("http://127.0.0.1", "http://localhost", "http://[::1]")
        if not value.startswith("https://") and not value.startswith(loopback):
            raise ValueError(_("must start with https://"))
        return value.rstrip("/")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        for item in value:
            try:
                ipaddress.ip_network(str(item), strict=False)
            except ValueError:
                raise ValueError(
                    _("{value} is not an IP address or network (like 10.0.0.0/8)").format(
                        value=item
                    )
                ) from None
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(_("must start with http:// or https://"))
        return value.rstrip("/")

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("smtp://", "smtps://", "smtp+starttls://")):
            raise ValueError(_("must start with smtp://, smtps:// or smtp+starttls://"))
        return value or None

    @field_validator("metrics_token", "webhook_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return value or None

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(_("must start with http:// or https://"))
        return value or None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value.startswith("postgres://") or value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; name it so SQLAlchemy does not look for psycopg2.
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite:", "postgresql+psycopg:")):
            raise ValueError(_("must be a sqlite:/// or postgresql:// URL"))
        return value

    @model_validator(mode="after")
    def _check_secret(self) -> Settings:
        if len(self.secret_key) < 32:
            raise ValueError(_("secret_key must be at least 32 characters"))
        if self.secret_key_previous is not None and len(self.secret_key_previous) < 32:
            raise ValueError(_("secret_key must be at least 32 characters"))
        if self.webhook_format == "json" and self.webhook_url and not self.webhook_secret:
            raise ValueError(_("webhook_format json needs webhook_secret to sign the messages"))
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            raise ValueError(_("metrics_token must be at least 16 characters"))
        if self.oidc_issuer:
            if not self.oidc_client_id or not self.oidc_client_secret:
                raise ValueError(
                    _(
                        "IAM_ONBOARD_OIDC_ISSUER needs IAM_ONBOARD_OIDC_CLIENT_ID and "
                        "IAM_ONBOARD_OIDC_CLIENT_SECRET (or IAM_ONBOARD_OIDC_CLIENT_SECRET_FILE)"
                    )
                )
            if not self.oidc_allowed_domains and not self.oidc_admin_groups:
                raise ValueError(
                    _(
                        "IAM_ONBOARD_OIDC_ISSUER needs IAM_ONBOARD_OIDC_ALLOWED_DOMAINS or "
                        "IAM_ONBOARD_OIDC_ADMIN_GROUPS: who at the provider may be an admin"
                    )
                )
        elif not self.local_admins:
            raise ValueError(
                _(
                    "IAM_ONBOARD_LOCAL_ADMINS=false needs IAM_ONBOARD_OIDC_ISSUER: "
                    "nobody could sign in otherwise"
                )
            )
        return self

    @property
    def sso(self) -> bool:
        return self.oidc_issuer is not None

    @property
    def uses_default_secret(self) -> bool:
        return self.secret_key == SANDBOX_SECRET

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    def require_real_secret(self) -> None:
        """Refuse to serve with the published default secret, sandbox or not.

        `demo` is the one way to run on it: a throwaway database on 127.0.0.1 that nobody else
        reaches. Anything served (`serve`) signs sessions that must not be forgeable.
        """
        if self.uses_default_secret:
            raise ConfigError(
                _(
                    "IAM_ONBOARD_SECRET_KEY is not set: set it (or IAM_ONBOARD_SECRET_KEY_FILE) "
                    "to a long random string before serving real users, e.g. {command}."
                ).format(command="`python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
            )


def _file_overrides() -> dict[str, str]:
    values: dict[str, str] = {}
    for name in _FILE_SETTINGS:
        path = os.environ.get(f"IAM_ONBOARD_{name.upper()}_FILE")
        if path:
            try:
                values[name] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    _("{variable}: cannot read {path}: {problem}").format(
                        variable=f"IAM_ONBOARD_{name.upper()}_FILE", path=path, problem=exc.strerror
                    )
                ) from exc
    return values


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning any bad value into one clear ConfigError line."""
    try:
        return Settings(**{**_file_overrides(), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        variable = f"IAM_ONBOARD_{name.upper()}" if first["loc"] else "configuration"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{variable}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()

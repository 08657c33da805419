"""The SSO settings: what must go together, and the client secret read from a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import load_settings
from app.errors import ConfigError

SSO = {
    "oidc_issuer": "https://idp.example.com/",
    "oidc_client_id": "portal",
    "oidc_client_secret": "s3cret",
}


def test_sso_is_off_by_default_and_local_admins_on() -> None:
    settings = load_settings()
    assert not settings.sso and settings.local_admins


def test_sso_settings_read_lists_and_trim_the_issuer() -> None:
    settings = load_settings(
        **SSO, oidc_allowed_domains="Example.com, @corp.example", oidc_admin_groups="iam-admins"
    )
    assert settings.sso and settings.oidc_issuer == "https://idp.example.com"
    assert settings.oidc_allowed_domains == ["example.com", "corp.example"]
    assert settings.oidc_admin_groups == ["iam-admins"]


def test_sso_without_a_rule_for_who_may_be_admin_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="IAM_ONBOARD_OIDC_ADMIN_GROUPS"):
        load_settings(**SSO)


def test_sso_without_the_client_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="IAM_ONBOARD_OIDC_CLIENT_ID"):
        load_settings(oidc_issuer="https://idp.example.com", oidc_admin_groups="admins")


def test_a_plain_http_issuer_is_refused_except_on_this_machine() -> None:
    with pytest.raises(ConfigError, match="IAM_ONBOARD_OIDC_ISSUER: must start with https://"):
        load_settings(**{**SSO, "oidc_issuer": "http://idp.example.com"}, oidc_admin_groups="a")
    local = load_settings(**{**SSO, "oidc_issuer": "http://127.0.0.1:9000"}, oidc_admin_groups="a")
    assert local.oidc_issuer == "http://127.0.0.1:9000"


def test_local_admins_can_be_switched_off_only_with_sso() -> None:
    with pytest.raises(ConfigError, match="IAM_ONBOARD_LOCAL_ADMINS=false needs"):
        load_settings(local_admins=False)
    assert not load_settings(**SSO, oidc_admin_groups="a", local_admins=False).local_admins


def test_the_client_secret_can_come_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("from-a-file\n", encoding="utf-8")
    monkeypatch.setenv("IAM_ONBOARD_OIDC_CLIENT_SECRET_FILE", str(secret))
    settings = load_settings(
        oidc_issuer="https://idp.example.com", oidc_client_id="portal", oidc_admin_groups="a"
    )
    assert settings.oidc_client_secret == "from-a-file"

"""Settings that decide whom the portal believes: trusted proxies, the default secret."""

from __future__ import annotations

import pytest

from app.config import SANDBOX_SECRET, load_settings
from app.errors import ConfigError


def test_trusted_proxies_default_to_none() -> None:
    assert load_settings().trusted_proxies == []


def test_trusted_proxies_read_as_a_comma_separated_list() -> None:
    settings = load_settings(trusted_proxies="10.0.0.5, 192.168.0.0/16,::1")
    assert settings.trusted_proxies == ["10.0.0.5", "192.168.0.0/16", "::1"]


def test_a_trusted_proxy_that_is_no_address_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="IAM_ONBOARD_TRUSTED_PROXIES: proxy.example"):
        load_settings(trusted_proxies="10.0.0.5,proxy.example")


@pytest.mark.parametrize("sandbox", [False, True])
def test_serving_refuses_the_published_secret_even_in_the_sandbox(sandbox: bool) -> None:
    settings = load_settings(sandbox=sandbox, secret_key=SANDBOX_SECRET)
    with pytest.raises(ConfigError, match="IAM_ONBOARD_SECRET_KEY is not set"):
        settings.require_real_secret()


def test_a_real_secret_is_served() -> None:
    load_settings(sandbox=True, secret_key="s" * 48).require_real_secret()

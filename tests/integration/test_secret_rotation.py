"""Rotating the app secret (docs/deploy.md): with the previous secret given, what it sealed
still opens; an admin who signs in once has their TOTP seed sealed again with the new secret,
after which the previous secret can go."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.config import load_settings
from app.main import create_app
from app.sandbox import Sandbox
from app.security.secretbox import SecretBox, SecretBoxError
from app.services.admins import create_admin
from app.services.portal import CLI_ACTOR, Portal, build_portal
from tests.helpers import Clock, set_up_admin, sign_in_admin

OLD = "old-secret-" + "o" * 40
NEW = "new-secret-" + "n" * 40
ADA = "ada@example.com"


def test_a_box_opens_what_the_previous_secret_sealed_and_says_so():
    sealed = SecretBox(OLD, purpose="p").encrypt("seed", bound_to="x")
    rotated = SecretBox(NEW, purpose="p", previous=OLD)
    assert rotated.open(sealed, bound_to="x") == ("seed", True)
    assert rotated.open(rotated.encrypt("seed", bound_to="x"), bound_to="x") == ("seed", False)
    with pytest.raises(SecretBoxError):
        SecretBox(NEW, purpose="p").decrypt(sealed, bound_to="x")


def _portal(aws: Sandbox, url: str, secret: str, previous: str | None = None) -> Portal:
    settings = load_settings(
        secret_key=secret,
        secret_key_previous=previous,
        database_url=url,
        base_url="http://portal.test",
        housekeeping_interval_seconds=0,
    )
    portal = build_portal(settings, endpoint=aws.url)
    portal.clock = Clock()
    return portal


def test_admins_keep_signing_in_across_a_rotation(aws: Sandbox, sqlite_url: str):
    before = _portal(aws, sqlite_url, OLD)
    with TestClient(create_app(before), base_url="http://portal.test") as browser:
        link = create_admin(before, email=ADA, actor=CLI_ACTOR).link
        seed = set_up_admin(browser, link.removeprefix("http://portal.test"), before.clock)

    # The new secret alone cannot read the seed: that is what a rotation without
    # IAM_ONBOARD_SECRET_KEY_PREVIOUS would do to every admin.
    during = _portal(aws, sqlite_url, NEW, previous=OLD)
    during.clock = before.clock
    with TestClient(create_app(during), base_url="http://portal.test") as browser:
        sign_in_admin(browser, ADA, seed, during.clock)
        assert browser.get("/admin/dashboard").status_code == 200

    after = _portal(aws, sqlite_url, NEW)  # the previous secret is gone
    after.clock = before.clock
    with TestClient(create_app(after), base_url="http://portal.test") as browser:
        sign_in_admin(browser, ADA, seed, after.clock)
        assert browser.get("/admin/dashboard").status_code == 200
    for p in (before, during, after):
        p.db.dispose()

"""Admin pages read as finished: sentences instead of jargon, every invite error at once, a
favicon and a title everywhere, the current page marked, times with their zone."""

from __future__ import annotations

import re

import pytest

from app.errors import PortalError
from app.services import enrollment
from app.services.directory import refresh_directory
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Portal
from tests.integration.test_dashboard import NEW_HIRE, signed_in

PAGES = ("/admin/dashboard", "/admin/invite", "/admin/audit", "/admin/outbox")


def test_every_admin_page_has_a_title_a_favicon_and_marks_itself_in_the_nav(portal: Portal):
    invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    with signed_in(portal) as ada:
        icon = ada.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.content.startswith(b"<svg")
        for path in (*PAGES, "/admin/users/alice"):
            page = ada.get(path)
            assert page.status_code == 200, path
            title = re.search(r"<title>([^<]+) · iam-onboard</title>", page.text)
            assert title and title.group(1).strip(), f"{path} has no title of its own"
            assert '<link rel="icon" href="data:image/svg+xml,%3Csvg' in page.text
            current = re.findall(r'<a href="([^"]+)" aria-current="page">', page.text)
            section = "/admin/dashboard" if path.startswith("/admin/users") else path
            assert current == [section], f"{path} marks {current} as the current page"


def test_the_invite_form_reports_every_field_error_at_once(portal: Portal):
    with signed_in(portal) as ada:
        page = ada.post(
            "/admin/invite",
            data={"csrf_token": ada.csrf, "user_name": "no spaces please", "email": "nope"},
            follow_redirects=True,
        )
    assert "letters, digits or + = , . @ _ - for the IAM user name" in page.text
    assert "Enter an email address like name@example.com." in page.text
    assert page.text.count('aria-invalid="true"') == 2


def _wrong_codes(portal: Portal, link: str) -> None:
    token = link.rsplit("/", 1)[1]
    enrollment_id = enrollment.start_enrollment(portal, token=token, actor=NEW_HIRE)
    enrollment.prepare_device(portal, enrollment_id=enrollment_id, actor=NEW_HIRE)
    with pytest.raises(PortalError):
        enrollment.verify_codes(
            portal, enrollment_id=enrollment_id, code1="000000", code2="000000", actor=NEW_HIRE
        )


def test_the_audit_log_reads_as_sentences_with_local_times(portal: Portal):
    result = invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    _wrong_codes(portal, result.link)
    refresh_directory(portal, actor=CLI_ACTOR)
    with signed_in(portal) as ada:
        page = ada.get("/admin/audit").text.replace("<wbr>", "")  # wrap points, not text
    assert "Wrong tries so far: 1 of 5." in page
    assert "failed tries" not in page and "groups=" not in page
    assert "Email alice@example.com; no extra groups" in page
    assert re.search(r"\b1 user, \d+ IAM calls", page) and "1 users" not in page
    # UTC in the markup (the fallback), on one line; app.js shows the reader's own zone.
    stamp = re.search(r'<td class="nowrap"><time datetime="([^"]+)" data-local="datetime"', page)
    assert stamp and stamp.group(1).endswith("Z")
    assert re.search(r'data-local="datetime" title="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC<', page)


def test_a_resend_mentions_a_lock_only_when_there_was_one(portal: Portal):
    invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    bora = invite_user(portal, user_name="bora", email="bora@example.com", actor=CLI_ACTOR)
    for _ in range(5):  # locked after five wrong pairs
        try:
            _wrong_codes(portal, bora.link)
        except PortalError:
            break  # the link stopped working: the enrollment is locked
    with signed_in(portal) as ada:
        assert "unlocks the enrollment" not in ada.get("/admin/users/alice").text
        assert "unlocks the enrollment" in ada.get("/admin/users/bora").text
        plain = ada.post(
            "/admin/users/alice/resend", data={"csrf_token": ada.csrf}, follow_redirects=True
        )
        locked = ada.post(
            "/admin/users/bora/resend", data={"csrf_token": ada.csrf}, follow_redirects=True
        )
    assert "The previous link no longer works." in plain.text
    assert "locked" not in plain.text.split("<main", 1)[1]
    assert "was locked after too many wrong codes" in locked.text

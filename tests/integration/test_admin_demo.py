"""A newcomer's first minutes: the demo's admin setup link leads to a working invite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.helpers import (
    Clock,
    admin_setup_link,
    answer_of,
    csrf_of,
    set_up_admin,
    sign_in_admin,
    start_demo,
)

pytestmark = pytest.mark.slow  # every test here starts `iam-onboard demo`

ADMIN = "admin@example.com"


def test_demo_admin_sets_up_signs_in_and_invites(tmp_path: Path):
    demo = start_demo(tmp_path)
    try:
        # What the person reads first is the demo's own banner, not a library's log lines.
        assert demo.output[0].startswith("iam-onboard demo:"), "\n".join(demo.output)
        link = admin_setup_link(demo.output)
        assert link.startswith(demo.portal_url + "/admin/setup/")
        clock = Clock()  # the demo runs on real time; this only picks the codes to type
        with httpx.Client(base_url=demo.portal_url, timeout=30) as browser:
            seed = set_up_admin(browser, link.removeprefix(demo.portal_url), clock)
            sign_in_admin(browser, ADMIN, seed, clock)
            page = browser.get("/admin/invite")
            r = browser.post(
                "/admin/invite",
                data={
                    "csrf_token": csrf_of(page.text),
                    "user_name": "newhire",
                    "email": "newhire@example.com",
                    "note": "",
                },
            )
            r = answer_of(browser, r)  # Post/Redirect/Get
            assert r.status_code == 200, r.text
            shown = re.search(r'id="invite-link">([^<]+)<', r.text)
            assert shown and shown.group(1).startswith(demo.portal_url + "/enroll/")
            assert "the mail to newhire@example.com is in the outbox" in r.text
            outbox = browser.get("/admin/outbox")
            mail_id = re.search(r'href="/admin/outbox/(\d+)"', outbox.text)
            assert mail_id
            mail = browser.get(f"/admin/outbox/{mail_id.group(1)}")
            assert shown.group(1) in mail.text and ADMIN in mail.text
        status = demo.cli("status", "--json")
        assert [(i["user_name"], i["status"]) for i in json.loads(status.stdout)] == [
            ("newhire", "invited")
        ]
        # A second admin from the command line; an admin who finished setup gets no new link.
        second = demo.cli("create-admin", "bo@example.com")
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip().splitlines()[-1].startswith(demo.portal_url + "/admin/setup/")
        again = demo.cli("create-admin", ADMIN)
        assert again.returncode == 1
        assert (
            again.stderr.strip()
            == f"iam-onboard: An admin {ADMIN} exists and has finished setting up."
        )
    finally:
        demo.stop()

    # The same database again: the admin exists, so no setup link is printed.
    rerun = start_demo(tmp_path)
    try:
        assert f"Admin {ADMIN} exists and has finished setup" in "\n".join(rerun.output)
        assert not any("/admin/setup/" in line for line in rerun.output)
    finally:
        rerun.stop()


def test_an_unfinished_demo_admin_gets_a_fresh_link(tmp_path: Path):
    first = start_demo(tmp_path)
    try:
        old = admin_setup_link(first.output)
    finally:
        first.stop()
    second = start_demo(tmp_path)
    try:
        new = admin_setup_link(second.output)
        assert new != old
        old_path = "/admin/setup/" + old.rsplit("/", 1)[1]  # each demo run has its own port
        assert httpx.get(second.portal_url + old_path).status_code == 404  # replaced
        assert httpx.get(new).status_code == 200
    finally:
        second.stop()

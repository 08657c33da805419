"""The dashboard's headline numbers and its MFA coverage chart, against the sandbox over HTTP."""

from __future__ import annotations

import re

from app.sandbox import Sandbox
from app.services.directory import refresh_directory
from app.services.directory.headline import coverage_series, headline
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Portal
from tests.helpers import Clock
from tests.integration.test_dashboard import enroll, mfa_user, refresh, signed_in

PASSWORD = "Str0ng!Passw0rd-1"


def number(html: str, id_: str) -> int:
    match = re.search(rf'<dd id="{id_}">(?:<a [^>]+>)?(\d+)', html)
    assert match, f"no #{id_} number on the page"
    return int(match.group(1))


def iam_console_users(iam_client) -> tuple[int, int]:
    """(with MFA, without MFA) among the users with a console password, as IAM says."""
    with_mfa = without = 0
    for page in iam_client.get_paginator("list_users").paginate():
        for user in page["Users"]:
            name = user["UserName"]
            try:
                iam_client.get_login_profile(UserName=name)
            except iam_client.exceptions.NoSuchEntityException:
                continue
            if iam_client.list_mfa_devices(UserName=name)["MFADevices"]:
                with_mfa += 1
            else:
                without += 1
    return with_mfa, without


def test_headline_counts_match_iam_and_follow_enrollments(portal: Portal, aws: Sandbox, iam_client):
    clock = Clock()
    portal.clock = clock
    aws.set_clock(clock)
    iam_client.create_user(UserName="carol")  # no console password: not a console user
    for name in ("dan", "dora"):  # console passwords, no MFA
        iam_client.create_user(UserName=name)
        iam_client.create_login_profile(UserName=name, Password=PASSWORD)
    mfa_user(iam_client, "erin", group="MFA")
    iam_client.create_login_profile(UserName="erin", Password=PASSWORD)
    mfa_user(iam_client, "fay", group=None)  # MFA, no console password
    invite_user(portal, user_name="yann", email="yann@example.com", actor=CLI_ACTOR)
    clock.advance(hours=portal.settings.invite_ttl_hours + 1)  # yann's link expires
    alice = invite_user(portal, user_name="alice", email="alice@example.com", actor=CLI_ACTOR)
    invite_user(portal, user_name="bora", email="bora@example.com", actor=CLI_ACTOR)

    with signed_in(portal) as ada:
        before = ada.get("/admin/dashboard").text
        assert "count-without-mfa" in before and number(before, "count-pending") == 2
        page = refresh(ada).text
        assert iam_console_users(iam_client) == (1, 2)
        assert number(page, "count-with-mfa") == 1
        assert number(page, "count-without-mfa") == 2
        assert number(page, "count-pending") == 2
        assert number(page, "count-expired") == 1
        assert "(33%)" in page  # 1 of 3 console users
        assert "One refresh so far" in page and page.count('class="chart-dot"') == 1

        # Alice enrolls through the portal: counted at once, with no new refresh.
        clock.advance(minutes=1)
        enroll(portal, alice.link)
        page = ada.get("/admin/dashboard").text
    assert iam_console_users(iam_client) == (2, 2)
    assert number(page, "count-with-mfa") == 2
    assert number(page, "count-without-mfa") == 2
    assert number(page, "count-pending") == 1
    assert number(page, "count-expired") == 1
    aws.set_clock(None)


def test_coverage_series_has_one_point_per_refresh(portal: Portal, aws: Sandbox, iam_client):
    clock = Clock()
    portal.clock = clock
    for name in ("dan", "dora"):
        iam_client.create_user(UserName=name)
        iam_client.create_login_profile(UserName=name, Password=PASSWORD)
    refresh_directory(portal, actor=CLI_ACTOR)
    for name in ("erin", "finn"):  # a day later each, one more console user with MFA
        clock.advance(days=1)
        mfa_user(iam_client, name, group="MFA")
        iam_client.create_login_profile(UserName=name, Password=PASSWORD)
        refresh_directory(portal, actor=CLI_ACTOR)
    with signed_in(portal) as ada:  # signed in now: a session from two days ago has expired
        page = ada.get("/admin/dashboard").text

    points = coverage_series(portal)
    assert [(p.console_users, p.console_with_mfa) for p in points] == [(2, 0), (3, 1), (4, 2)]
    assert [p.coverage for p in points] == [0.0, 1 / 3, 0.5]
    assert points[0].at < points[1].at < points[2].at
    # The chart: inline SVG that names itself and says what it shows.
    assert '<svg class="chart"' in page and 'role="img"' in page
    assert "3 refreshes: from 0% on" in page and "to 50% on" in page
    assert page.count('class="chart-dot"') == 3
    assert "One refresh so far" not in page
    assert headline(portal).coverage == 0.5

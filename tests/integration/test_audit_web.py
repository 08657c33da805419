"""The audit log page and its CSV / JSON Lines exports, as an admin uses them."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.audit import record
from app.services.portal import Actor, Portal
from app.services.sessions import create_session
from app.store.models import Admin, AuditEvent
from tests.helpers import Clock

ADA = "ada@example.com"
ADMIN = Actor("admin@example.com", "203.0.113.5")
OTHER = Actor("second@example.com", "203.0.113.6")


@pytest.fixture
def clock(portal: Portal) -> Clock:
    c = Clock()
    portal.clock = c
    return c


@pytest.fixture
def ada(portal: Portal, clock: Clock) -> Iterator[TestClient]:
    """A browser with an admin session (signing in is tested in test_admin_auth)."""
    with portal.db.session() as s:
        admin = Admin(email=ADA)
        s.add(admin)
        s.flush()
        admin_id = admin.id
    raw = create_session(portal, kind="admin", admin_id=admin_id, data={"email": ADA})
    with TestClient(create_app(portal), base_url="http://portal.test") as client:
        client.cookies.set("iam_onboard", raw)
        yield client


def rows(page: str) -> list[tuple[str, str]]:
    """(action, user) of each event in the page's table."""
    body = page.split("<tbody>")[1].split("</tbody>")[0] if "<tbody>" in page else ""
    found = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = [
            re.sub(r"<[^>]+>", "", cell).strip()  # links, and <wbr> wrap points
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        ]
        found.append((cells[2], cells[3]))
    return found


def test_the_audit_page_needs_an_admin(portal: Portal):
    with TestClient(create_app(portal), base_url="http://portal.test") as stranger:
        for path in ("/admin/audit", "/admin/audit.csv", "/admin/audit.jsonl"):
            r = stranger.get(path, follow_redirects=False)
            assert r.status_code == 303
            assert r.headers["location"].startswith("/admin/sign-in?next=")


def test_the_audit_page_filters_by_actor_action_user_and_day(
    portal: Portal, clock: Clock, ada: TestClient
):
    clock.advance(days=-2)  # two days ago (the admin's session starts now)
    day1 = clock.now
    record(portal, actor=ADMIN, action="resend", target_user="alice")
    record(portal, actor=OTHER, action="iam.delete_user", target_user="Bob")
    clock.advance(days=2)
    record(portal, actor=ADMIN, action="iam.add_user_to_group", target_user="bob", detail="MFA")

    page = ada.get("/admin/audit")
    assert page.status_code == 200
    everything = rows(page.text)
    assert everything[0] == ("iam.add_user_to_group", "bob")  # newest first
    assert ("resend", "alice") in everything and ("iam.delete_user", "Bob") in everything

    assert rows(ada.get("/admin/audit?actor=ADMIN@example.com").text) == [
        ("iam.add_user_to_group", "bob"),
        ("resend", "alice"),
    ]
    assert [a for a, _u in rows(ada.get("/admin/audit?action=iam").text)] == [
        "iam.add_user_to_group",
        "iam.delete_user",
    ]
    assert len(rows(ada.get("/admin/audit?user=BOB").text)) == 2  # IAM names ignore case
    day = day1.date().isoformat()
    same_day = rows(ada.get(f"/admin/audit?since={day}&until={day}&action=iam").text)
    assert same_day == [("iam.delete_user", "Bob")]
    page = ada.get(f"/admin/audit?since={day}&until={day}&action=iam")
    assert f'href="/admin/audit.csv?action=iam&amp;since={day}&amp;until={day}"' in page.text

    bad = ada.get("/admin/audit?since=last+week")
    assert bad.status_code == 400
    assert 'id="f-since-error"' in bad.text


def test_the_audit_page_has_pages(portal: Portal, clock: Clock, ada: TestClient):
    for n in range(105):
        clock.advance(seconds=1)
        record(portal, actor=ADMIN, action="resend", target_user=f"user{n}")
    first = ada.get("/admin/audit?action=resend")
    assert len(rows(first.text)) == 100
    assert rows(first.text)[0] == ("resend", "user104")
    assert 'href="/admin/audit?action=resend&amp;page=2"' in first.text
    second = ada.get("/admin/audit?action=resend&page=2")
    assert [u for _a, u in rows(second.text)] == [f"user{n}" for n in range(4, -1, -1)]
    assert "page=3" not in second.text


def test_exports_follow_the_filters_and_no_field_can_forge_a_line(
    portal: Portal, clock: Clock, ada: TestClient
):
    nasty = 'x\r\n2024-01-01,admin,offboard,root,ok\n{"forged": true}\u2028end\x1b[2J'
    with portal.db.session() as s:
        # Written around record(), which cleans fields: the exports must hold on their own.
        s.add(
            AuditEvent(
                at=clock.now, actor="=cmd|' /C calc'!A0", action="offboard",
                target_user="mallory", outcome="ok", source_ip="203.0.113.5", detail=nasty,
            )
        )  # fmt: skip
    record(portal, actor=ADMIN, action="resend", target_user="alice")
    clock.advance(minutes=1)

    r = ada.get("/admin/audit.csv?user=mallory")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(
        r'attachment; filename="audit-\d{8}-\d{4}\.csv"', r.headers["content-disposition"]
    )
    assert len(r.text.splitlines()) == 2  # the header and the one event of mallory
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert row["target_user"] == "mallory" and row["action"] == "offboard"
    assert row["actor"].startswith("'=")  # a spreadsheet would run it otherwise
    assert "forged" in row["detail"] and not any(ch in row["detail"] for ch in "\r\n\x1b")

    r = ada.get("/admin/audit.jsonl?user=mallory")
    assert r.status_code == 200
    assert r.headers["content-disposition"].endswith('.jsonl"')
    lines = r.text.splitlines()
    assert len(lines) == 1
    assert "\\n" in lines[0] and "\\u2028" in lines[0]  # escaped, not a line break
    assert json.loads(lines[0])["detail"] == nasty

    everything = ada.get("/admin/audit.jsonl").text.splitlines()
    assert {json.loads(line)["action"] for line in everything} >= {"offboard", "resend"}
    tomorrow = (clock.now + timedelta(days=1)).date().isoformat()
    assert ada.get(f"/admin/audit.jsonl?since={tomorrow}").text == ""

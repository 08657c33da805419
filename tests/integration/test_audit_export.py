"""The audit log: filters, and CSV / JSON Lines exports no field can forge a line in."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from app.services.audit import audit_csv, audit_jsonl, list_events, record
from app.services.portal import Actor, Portal
from app.store.models import AuditEvent
from tests.helpers import Clock

ADMIN = Actor("admin@example.com", "203.0.113.5")
OTHER = Actor("second@example.com", "203.0.113.6")


def test_events_filter_by_actor_action_user_and_time(portal: Portal):
    clock = Clock()
    portal.clock = clock
    start = clock.now
    record(portal, actor=ADMIN, action="resend", target_user="alice")
    clock.advance(minutes=5)
    record(portal, actor=OTHER, action="iam.delete_user", target_user="Bob")
    clock.advance(minutes=5)
    record(portal, actor=ADMIN, action="iam.add_user_to_group", target_user="bob", detail="MFA")

    assert [e.action for e in list_events(portal, actor="ADMIN@example.com").events] == [
        "iam.add_user_to_group",
        "resend",
    ]
    assert len(list_events(portal, action="iam").events) == 2  # iam.* as a family
    assert list_events(portal, action="iam.delete").events == []  # not a prefix match
    assert len(list_events(portal, user="bob").events) == 2  # IAM names ignore case
    window = list_events(
        portal, since=start + timedelta(minutes=1), until=start + timedelta(minutes=6)
    )
    assert [e.action for e in window.events] == ["iam.delete_user"]

    first = list_events(portal, page=1, per_page=2)
    second = list_events(portal, page=2, per_page=2)
    assert first.total == 4 and first.has_next and not second.has_next  # bootstrap counts too
    assert len(first.events) == 2 and len(second.events) == 2


def test_exports_keep_one_event_per_line_whatever_the_fields_hold(portal: Portal):
    nasty = 'x\r\n2024-01-01,admin,offboard,root,ok\n{"forged": true}\u2028\u0085end'
    with portal.db.session() as s:
        # Written around record(), which cleans fields: the exports must hold on their own.
        s.add(
            AuditEvent(
                at=portal.clock(), actor="=HYPERLINK(\"http://evil\")", action="invite",
                target_user="-2+3", outcome="ok", source_ip="@SUM(1)", detail=nasty,
            )
        )  # fmt: skip
    events = list_events(portal, action="invite").events
    assert len(events) == 1

    lines = audit_jsonl(events).splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["detail"] == nasty

    text = audit_csv(events)
    assert len(text.splitlines()) == 2  # the header and one event
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    assert rows[0]["actor"].startswith("'=")
    assert rows[0]["target_user"] == "'-2+3"
    assert rows[0]["source_ip"] == "'@SUM(1)"
    assert "\n" not in rows[0]["detail"] and "forged" in rows[0]["detail"]

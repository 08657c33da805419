"""The store on SQLite always, and on PostgreSQL when IAM_ONBOARD_TEST_POSTGRES_URL is given."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.services import audit, ratelimit
from app.services.portal import Actor
from app.services.sessions import (
    create_session,
    end_session,
    get_session,
    pop_session_value,
    put_session_value,
    update_session_data,
)
from app.store.db import Database
from app.store.models import AuditEvent, Invitation, RateLimit
from tests.conftest import make_portal


def _invitation(**values: object) -> Invitation:
    defaults: dict[str, object] = {
        "user_name": "Alice",
        "user_name_key": "alice",
        "email": "alice@example.com",
        "invited_by": "admin@example.com",
        "expires_at": datetime.now(UTC) + timedelta(hours=72),
    }
    return Invitation(**{**defaults, **values})


def test_migrations_create_every_table_and_leave_nothing_pending(database_url: str):
    db = Database(database_url)
    assert db.pending_migrations()
    db.migrate()
    assert not db.pending_migrations()
    tables = set(inspect(db.engine).get_table_names())
    assert {
        "invitations",
        "enrollments",
        "audit_events",
        "admins",
        "web_sessions",
        "api_tokens",
        "outbox",
    } <= tables
    db.migrate()  # a second start applies nothing and fails on nothing
    db.dispose()


def test_times_come_back_in_utc_and_lists_round_trip(database_url: str):
    db = Database(database_url)
    db.migrate()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.session() as s:
        s.add(_invitation(expires_at=when, extra_groups=["Developers", "ReadOnly"]))
    with db.session() as s:
        inv = s.scalars(select(Invitation)).one()
        assert inv.expires_at == when and inv.expires_at.tzinfo is not None
        assert inv.extra_groups == ["Developers", "ReadOnly"]
        assert inv.status == "creating"
    db.dispose()


def test_token_hashes_are_unique(database_url: str):
    db = Database(database_url)
    db.migrate()
    with db.session() as s:
        s.add(_invitation(token_hash="a" * 64))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(_invitation(token_hash="a" * 64, user_name="bob", user_name_key="bob"))
    db.dispose()


def test_audit_event_survives_and_cannot_forge_lines(database_url: str, sandbox):
    portal = make_portal(sandbox, database_url)
    audit.record(
        portal,
        actor=Actor("eve\nFAKE admin deleted everything", source_ip="10.0.0.1\r\n"),
        action="invite",
        target_user="mallory\x1b[31m",
        detail="line1\nline2",
    )
    with portal.db.session() as s:
        event = s.scalars(select(AuditEvent)).one()
    for value in (event.actor, event.target_user, event.detail, event.source_ip):
        assert value is not None
        assert not any(ord(ch) < 32 for ch in value)
    assert event.at.tzinfo is not None
    portal.db.dispose()


def test_sessions_store_only_a_hash_and_end_server_side(database_url: str, sandbox):
    portal = make_portal(sandbox, database_url)
    raw = create_session(portal, kind="admin")
    session = get_session(portal, raw)
    assert session is not None and session.id_hash != raw
    end_session(portal, raw)
    assert get_session(portal, raw) is None
    portal.db.dispose()


@pytest.mark.parametrize("write", ["put", "pop", "update"])
def test_a_session_ended_by_another_request_midway_takes_no_write_and_raises_nothing(
    database_url: str, sandbox, write: str
):
    """A lockout ends the enrollment's sessions while another request of the same person keeps
    its answer page in one: that request answers as usual (wapiti once got a 500 here)."""
    portal = make_portal(sandbox, database_url)
    raw = create_session(portal, kind="enroll", data={"answer": "sealed page"})
    ended: list[str] = []

    def end_it_before_the_write(*_args: object) -> None:
        if not ended:
            ended.append(raw)
            end_session(portal, raw)  # the other request, between this one's read and write

    event.listen(Session, "before_flush", end_it_before_the_write)
    try:
        if write == "put":
            put_session_value(portal, raw, "answer", "another page")
        elif write == "pop":
            assert pop_session_value(portal, raw, "answer") == "sealed page"
        else:
            update_session_data(portal, raw, step_up_at=None)
    finally:
        event.remove(Session, "before_flush", end_it_before_the_write)
    assert ended == [raw]
    assert get_session(portal, raw) is None  # ended it stays
    portal.db.dispose()


def test_idle_sessions_expire(database_url: str, sandbox):
    portal = make_portal(sandbox, database_url)
    raw = create_session(portal, kind="admin")
    later = datetime.now(UTC) + timedelta(minutes=31)
    portal.clock = lambda: later
    assert get_session(portal, raw) is None
    portal.db.dispose()


def test_rate_limit_counts_to_the_limit_then_a_new_window_starts_over(database_url: str, sandbox):
    portal = make_portal(sandbox, database_url)
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    portal.clock = lambda: start
    minute = timedelta(minutes=1)
    seen = [ratelimit.hit(portal, key="enroll:10.0.0.1", limit=3, window=minute) for _ in range(5)]
    assert seen == [True, True, True, False, False]
    # Another key has a count of its own.
    assert ratelimit.hit(portal, key="enroll:10.0.0.2", limit=3, window=minute)
    # Within the same window it stays refused; a full window later it counts from one again.
    portal.clock = lambda: start + timedelta(seconds=59)
    assert not ratelimit.hit(portal, key="enroll:10.0.0.1", limit=3, window=minute)
    portal.clock = lambda: start + minute
    seen = [ratelimit.hit(portal, key="enroll:10.0.0.1", limit=3, window=minute) for _ in range(4)]
    assert seen == [True, True, True, False]
    portal.db.dispose()


def test_rate_limit_counts_every_hit_of_a_burst(database_url: str, sandbox):
    # Eight threads hitting one key at once: every hit is counted, none lost to a race, so
    # exactly `limit` of them pass.
    portal = make_portal(sandbox, database_url)
    start = datetime.now(UTC)
    portal.clock = lambda: start
    barrier = threading.Barrier(8)

    def burst() -> list[bool]:
        barrier.wait()
        return [
            ratelimit.hit(portal, key="burst", limit=20, window=timedelta(minutes=1))
            for _ in range(5)
        ]

    with ThreadPoolExecutor(8) as pool:
        results = [ok for batch in pool.map(lambda _: burst(), range(8)) for ok in batch]
    assert results.count(True) == 20
    assert results.count(False) == 20
    with portal.db.session() as s:
        assert s.get(RateLimit, "burst").count == 40  # type: ignore[union-attr]
    portal.db.dispose()


def _row(**values: object) -> dict[str, object]:
    return {
        "user_name_key": str(values["user_name"]).lower(),
        "email": "someone@example.com",
        "invited_by": "admin@example.com",
        "expires_at": datetime.now(UTC) + timedelta(hours=72),
        **values,
    }


def test_a_session_rolls_back_on_error_and_raises_sqlalchemy_errors_without_values(
    database_url: str,
):
    db = Database(database_url)
    db.migrate()
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(_invitation(**_row(id="e" * 32, user_name="Eve", token_hash="h5")))
        s.flush()
        raise RuntimeError("after the insert")
    with db.session() as s:
        assert s.get(Invitation, "e" * 32) is None
        s.add(_invitation(**_row(id="f" * 32, user_name="Fay", token_hash="s3cr3t")))
    with pytest.raises(IntegrityError) as caught, db.session() as s:
        s.add(
            _invitation(
                **_row(id="g" * 32, user_name="Gus", token_hash="s3cr3t", note="private words")
            )
        )
    # The statement's values are not listed (the database's own text may name the key).
    assert "private words" not in str(caught.value)
    with db.session() as s:  # the pool's connection is usable after the failure
        assert s.get(Invitation, "g" * 32) is None
        assert s.get(Invitation, "f" * 32) is not None
    db.dispose()

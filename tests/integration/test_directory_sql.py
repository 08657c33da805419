"""The dashboard's statuses, filters, counts and pages, worked out in SQL, agree with the rules
in Python (statuses.compute_status) for every kind of user, on SQLite and PostgreSQL.

The directory is written straight into the database (a snapshot and the portal's records), so
every status and every corner (a second invitation, a restarted enrollment, an invite made
after the refresh, one the refresh no longer found) is there without IAM calls.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.services import directory
from app.services.directory.records import portal_records
from app.services.portal import Portal
from app.services.statuses import ORDER, STATUSES, compute_status, iam_status, status_slug
from app.store.models import (
    DirectorySnapshot,
    DirectoryUser,
    Enrollment,
    Invitation,
    new_id,
)
from app.store.states import EnrollmentState, InvitationState, UserStatus
from tests.conftest import make_portal
from tests.helpers import Clock

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REFRESHED = NOW - timedelta(hours=1)


@pytest.fixture
def store(aws: Any, database_url: str) -> Iterator[Portal]:
    p = make_portal(aws, database_url)
    p.clock = Clock(NOW)
    yield p
    p.db.dispose()


def _invitation(name: str, status: str, *, created: datetime, **extra: Any) -> Invitation:
    return Invitation(
        id=new_id(),
        user_name=name,
        user_name_key=name.lower(),
        email=extra.pop("email", f"{name.lower()}@example.com"),
        status=status,
        invited_by="boss@example.com",
        created_at=created,
        expires_at=extra.pop("expires_at", created + timedelta(days=3)),
        **extra,
    )


def fill(portal: Portal) -> None:
    """A snapshot of 120 IAM users of every kind, and invitations in every state."""
    rng = random.Random(16)
    users: list[DirectoryUser] = []
    records: list[Invitation] = []
    later: list[Enrollment] = []
    for i in range(120):
        name = f"User{i:03d}"
        has_mfa, in_group = rng.random() < 0.5, rng.random() < 0.7
        plain = iam_status(has_mfa=has_mfa, in_mfa_group=in_group)
        serials = [f"arn:aws:iam::1:mfa/{name}"] if has_mfa and rng.random() < 0.8 else []
        users.append(
            DirectoryUser(
                user_name=name,
                user_name_key=name.lower(),
                in_mfa_group=in_group,
                virtual_mfa_serials=serials,
                mfa_active=has_mfa,
                has_password=rng.random() < 0.5,
                status="stale",  # what an old refresh stored: the listing must not trust it
                iam_status=plain,
                iam_rank=ORDER[plain],
                refreshed_at=REFRESHED,
            )
        )
    # Invited users, in the snapshot: one of each invitation and enrollment situation.
    day = timedelta(days=1)
    pending, e, past = InvitationState.PENDING, EnrollmentState, NOW - day
    cases: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
        (pending, {}, []),
        (pending, {"expires_at": past}, []),  # past its TTL
        (InvitationState.EXPIRED, {}, []),
        (InvitationState.USED, {"used_at": past}, []),
        (InvitationState.REVOKED, {}, []),
        (pending, {"locked_at": past}, []),
        (pending, {}, [{"status": e.DEVICE_CREATED}]),
        (pending, {}, [{"status": e.STARTED, "expires_at": past}]),
        (pending, {"expires_at": past}, [{"status": e.ENABLING, "expires_at": past}]),
        # A restarted enrollment: the latest one counts.
        (pending, {}, [{"status": e.EXPIRED}, {"status": e.DEVICE_CREATED}]),
        (pending, {}, [{"status": e.ENABLED, "enabled_at": NOW - timedelta(minutes=5)}]),
    ]  # fmt: skip
    for n, (status, extra, enrollments) in enumerate(cases):
        inv = _invitation(f"User{n:03d}", status, created=NOW - 2 * day, **extra)
        records.append(inv)
        for k, enr in enumerate(enrollments):
            later.append(
                Enrollment(
                    invitation_id=inv.id,
                    user_name=inv.user_name,
                    created_at=NOW - day + timedelta(minutes=k),
                    expires_at=enr.pop("expires_at", NOW + day),
                    **enr,
                )
            )
    # An older invitation under a later one (the later one counts), a failed one (says
    # nothing), a name in another case (IAM names ignore case).
    records.append(_invitation("User050", InvitationState.REVOKED, created=NOW - 9 * day))
    records.append(_invitation("User050", InvitationState.PENDING, created=NOW - 2 * day))
    records.append(_invitation("User051", InvitationState.FAILED, created=NOW - 2 * day))
    records.append(_invitation("USER052", InvitationState.USED, created=NOW - 2 * day))
    # Not in the snapshot: invited after the refresh (shown), before it (gone from IAM, not
    # shown), revoked since (not shown).
    records.append(_invitation("late", InvitationState.PENDING, created=NOW - timedelta(minutes=9)))
    records.append(_invitation("gone", InvitationState.PENDING, created=NOW - 2 * day))
    records.append(
        _invitation("undone", InvitationState.REVOKED, created=NOW - timedelta(minutes=8))
    )
    with portal.db.session() as s:
        s.add_all(users)
        s.add_all(records)
        s.flush()  # the invitations before the enrollments that point at them
        s.add_all(later)
        s.add(DirectorySnapshot(id=1, refreshed_at=REFRESHED, user_count=len(users)))


def expected(portal: Portal) -> dict[str, str]:
    """User name -> status, by the rules in Python (what the listing did before it used SQL)."""
    with portal.db.session() as s:
        invitations, enrollments = portal_records(s)
        users = [(u.user_name, u.mfa_active, u.in_mfa_group) for u in s.query(DirectoryUser)]
    found: dict[str, str] = {}
    for name, has_mfa, in_group in users:
        inv = invitations.get(name.lower())
        enr = enrollments.get(inv.id) if inv else None
        found[name] = compute_status(
            invitation=inv, enrollment=enr, has_mfa=has_mfa, in_mfa_group=in_group, now=NOW
        )
    for key, inv in invitations.items():
        if key in {n.lower() for n in found} or inv.status == InvitationState.REVOKED:
            continue
        if inv.created_at > REFRESHED:
            found[inv.user_name] = compute_status(
                invitation=inv,
                enrollment=enrollments.get(inv.id),
                has_mfa=False,
                in_mfa_group=True,
                now=NOW,
            )
    return found


def in_order(statuses: dict[str, str]) -> list[str]:
    return sorted(statuses, key=lambda n: (ORDER[statuses[n]], n.lower()))


def test_every_status_count_and_page_agrees_with_the_rules(store: Portal) -> None:
    fill(store)
    want = expected(store)
    assert set(want.values()) == set(STATUSES), "the fixture covers every status"
    assert "late" in want and "gone" not in want and "undone" not in want
    listing = directory.list_users(store, per_page=1000)
    assert {r.user_name: r.status for r in listing.rows} == want
    assert [r.user_name for r in listing.rows] == in_order(want)
    assert listing.counts == {s: Counter(want.values())[s] for s in STATUSES}
    assert listing.all_users == listing.total == len(want)
    late = next(r for r in listing.rows if r.user_name == "late")
    assert not late.in_snapshot and late.in_mfa_group and late.email == "late@example.com"
    # The device bound since the refresh shows, though the snapshot has none.
    bound = next(r for r in listing.rows if r.user_name == "User010")
    assert bound.mfa_devices == 1 and bound.enrolled_at is None


def test_pages_filters_and_search_agree_with_the_rules(store: Portal) -> None:
    fill(store)
    want = expected(store)
    everyone = in_order(want)
    seen: list[str] = []
    for page in range(1, 6):
        listing = directory.list_users(store, page=page, per_page=25)
        assert listing.pages == 5 and listing.total == len(want)
        seen += [r.user_name for r in listing.rows]
    assert seen == everyone
    assert directory.list_users(store, page=99, per_page=25).rows == []
    for status in STATUSES:
        listing = directory.list_users(store, status=status_slug(status), per_page=1000)
        wanted = [n for n in everyone if want[n] == status]
        assert [r.user_name for r in listing.rows] == wanted, status
        assert listing.total == len(wanted)
    # Search: the name, any case, or the email; % and _ are plain characters.
    listing = directory.list_users(store, query="USER05", per_page=1000)
    assert [r.user_name for r in listing.rows] == [n for n in everyone if "user05" in n.lower()]
    listing = directory.list_users(store, query="late@EXAMPLE", per_page=1000)
    assert [r.user_name for r in listing.rows] == ["late"]
    assert directory.list_users(store, query="%", per_page=1000).total == 0
    assert directory.list_users(store, query="_", per_page=1000).total == 0
    listing = directory.list_users(store, status=UserStatus.ENROLLED, query="user05", per_page=1000)
    assert [r.user_name for r in listing.rows] == [
        n for n in everyone if want[n] == UserStatus.ENROLLED and "user05" in n.lower()
    ]
    assert listing.counts == {s: Counter(want.values())[s] for s in STATUSES}
    exported = directory.export_rows(store, status="no_mfa")
    assert [r.user_name for r in exported] == [n for n in everyone if want[n] == "no MFA"]


def test_time_moves_an_invitation_past_its_expiry_without_a_refresh(store: Portal) -> None:
    fill(store)
    before = directory.list_users(store, status="invited", per_page=1000)
    assert before.total > 0
    store.clock.advance(days=4)  # type: ignore[attr-defined]
    after = directory.list_users(store, status="invited", per_page=1000)
    assert after.total == 0
    assert directory.list_users(store).counts[UserStatus.INVITE_EXPIRED] >= before.total

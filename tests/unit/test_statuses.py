"""The status rules: which one of the nine statuses a user gets, and in what order they show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.errors import ValidationError
from app.services.statuses import (
    STATUSES,
    EnrollmentFacts,
    InvitationFacts,
    compute_status,
    parse_status,
    status_slug,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
EARLIER = NOW - timedelta(hours=1)


def inv(status: str = "pending", *, expires_at=LATER, locked_at=None) -> InvitationFacts:
    return InvitationFacts(
        id="i1",
        user_name="alice",
        email="alice@example.com",
        status=status,
        invited_by="ada@example.com",
        created_at=NOW - timedelta(days=1),
        expires_at=expires_at,
        used_at=NOW if status == "used" else None,
        locked_at=locked_at,
    )


def enr(status: str, *, expires_at=LATER) -> EnrollmentFacts:
    return EnrollmentFacts(status=status, expires_at=expires_at, enabled_at=None)


@pytest.mark.parametrize(
    ("invitation", "enrollment", "has_mfa", "in_group", "expected"),
    [
        (inv(), None, False, True, "invited"),
        (inv(expires_at=EARLIER), None, False, True, "invite expired"),
        (inv("expired"), None, False, True, "invite expired"),
        (inv(), enr("device_created"), False, True, "enrolling"),
        (inv(), enr("device_created", expires_at=EARLIER), False, True, "invited"),
        # MFA is bound and only finishing is left: still enrolling, whatever the clock says.
        (inv(expires_at=EARLIER), enr("enabled", expires_at=EARLIER), True, True, "enrolling"),
        (inv(locked_at=EARLIER), enr("locked"), False, True, "locked"),
        (inv("used"), enr("done"), True, True, "enrolled"),
        (inv("revoked"), None, False, True, "revoked"),
        # The invitation is current; the IAM snapshot may still show a device a reset removed.
        (inv(), None, True, True, "invited"),
        (None, None, False, True, "no MFA"),
        (None, None, False, False, "no MFA"),
        (None, None, True, False, "outside MFA group"),
        (None, None, True, True, "MFA (unmanaged)"),
    ],
)
def test_status_rules(invitation, enrollment, has_mfa, in_group, expected):
    status = compute_status(
        invitation=invitation,
        enrollment=enrollment,
        has_mfa=has_mfa,
        in_mfa_group=in_group,
        now=NOW,
    )
    assert status == expected


def test_expired_invitations_sort_first_and_every_status_has_a_slug():
    assert STATUSES[0] == "invite expired"
    assert len(STATUSES) == 9
    slugs = [status_slug(s) for s in STATUSES]
    assert "mfa_unmanaged" in slugs and "outside_mfa_group" in slugs
    assert len(set(slugs)) == 9
    for status, slug in zip(STATUSES, slugs, strict=True):
        assert parse_status(slug) == status
        assert parse_status(status) == status
        assert parse_status(status.upper()) == status
    with pytest.raises(ValidationError, match="Unknown status"):
        parse_status("happy")

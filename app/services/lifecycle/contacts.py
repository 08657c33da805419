"""A managed user's contact email: changed only by an explicit admin action.

The email on record is the user's `iam-onboard:email` tag. Resend, reset and reminders send
there; a refused, failed or replayed request never changes it (docs/architecture.md,
"Bounded authority"). In the browser the change asks for a fresh TOTP code.
"""

from __future__ import annotations

from sqlalchemy import select

from app.aws.errors import AwsError
from app.aws.iam import EMAIL_TAG
from app.errors import ValidationError
from app.i18n import _
from app.services import audit
from app.services.invitations import EMAIL, LIVE_STATES
from app.services.lifecycle.ownership import require_managed
from app.services.own_writes import user_reader
from app.services.portal import Actor, Portal
from app.store.models import Invitation


def change_email(portal: Portal, *, user_name: str, email: str, actor: Actor) -> str:
    """Set the managed user's contact email (its tag and its waiting invitations); returns the
    user name as IAM spells it."""
    email = email.strip()
    if len(email) > 320 or not EMAIL.fullmatch(email):
        raise ValidationError(_("Enter an email address like name@example.com."), field="email")
    iam = user_reader(portal, portal.iam(), user_name)  # the user may be a moment old
    owner = require_managed(iam, user_name)
    name = owner.user_name
    detail = f"{owner.email or '-'} -> {email}"
    try:
        iam.tag_user(name, {EMAIL_TAG: email})
    except AwsError as exc:
        audit.record(
            portal,
            actor=actor,
            action="email.change",
            target_user=name,
            outcome="failed",
            aws_request_id=exc.request_id,
            detail=f"{detail}: {exc.message}",
        )
        raise
    with portal.db.session() as s:
        waiting = s.scalars(
            select(Invitation)
            .where(Invitation.user_name_key == name.lower())
            .where(Invitation.status.in_(LIVE_STATES))
        )
        for inv in waiting:
            inv.email = email
    audit.record(
        portal,
        actor=actor,
        action="email.change",
        target_user=name,
        aws_request_id=iam.last_request_id,
        detail=detail,
    )
    return name

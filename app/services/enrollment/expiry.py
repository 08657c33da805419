"""Housekeeping: enrollments and links past their time."""

from __future__ import annotations

from sqlalchemy import and_, exists, select, update

from app import metrics
from app.services.enrollment.device import delete_device, device_assigned
from app.services.enrollment.state import record, set_status
from app.services.portal import SYSTEM_ACTOR, Portal
from app.services.webhooks import notify, stamp
from app.store.models import Enrollment, Invitation
from app.store.states import BOUND_ENROLLMENT, EnrollmentState, InvitationState, WebhookEvent

# Past their time, these lose their seed (and their unbound device).
EXPIRING = (EnrollmentState.STARTED, EnrollmentState.DEVICE_CREATED, EnrollmentState.ENABLING)


def expire_enrollments(portal: Portal) -> int:
    """Wipe seeds (and unbound devices) of enrollments past their time, expire old links.

    Returns how many enrollments and invitations it marked expired.
    """
    now = portal.clock()
    with portal.db.session() as s:
        rows = list(
            s.scalars(
                select(Enrollment)
                .where(Enrollment.status.in_(EXPIRING))
                .where(Enrollment.expires_at <= now)
            )
        )
    changed = 0
    iam = portal.iam() if rows else None
    for enr in rows:
        assert iam is not None
        if enr.status == EnrollmentState.ENABLING and enr.device_serial:
            if device_assigned(iam, enr.user_name, enr.device_serial) is not False:
                continue  # bound (or IAM cannot say): the person's finish step takes it on
        expired = set_status(
            portal, enr.id, enr.version, status=EnrollmentState.EXPIRED, seed_encrypted=None
        )
        if not expired:
            continue  # the person acted meanwhile
        if enr.device_serial:
            delete_device(portal, iam, enr.device_serial, enr.user_name, SYSTEM_ACTOR)
        record(portal, SYSTEM_ACTOR, "enroll.expired", enr.user_name)
        metrics.enrollment("expired")
        changed += 1
    with portal.db.session() as s:
        # A link whose device is already bound stays usable, so the finish step can complete.
        bound = exists().where(
            and_(
                Enrollment.invitation_id == Invitation.id,
                Enrollment.status.in_(BOUND_ENROLLMENT),
            )
        )
        # RETURNING (SQLite 3.35+, PostgreSQL): exactly the rows this run expired are told.
        gone = s.execute(
            update(Invitation)
            .where(Invitation.status == InvitationState.PENDING, Invitation.expires_at <= now)
            .where(~bound)
            .values(status=InvitationState.EXPIRED)
            .returning(Invitation.id, Invitation.user_name, Invitation.expires_at)
            .execution_options(synchronize_session=False)
        ).all()
    changed += len(gone)
    metrics.invitation("expired", len(gone))
    for invitation_id, user_name, expires_at in gone:
        notify(
            portal, WebhookEvent.EXPIRED, key=f"{invitation_id}:{stamp(expires_at)}",
            user=user_name,
            text=f"The enrollment link of {user_name} expired unused; resend it to try again.",
        )  # fmt: skip
    return changed

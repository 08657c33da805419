"""After MFA is bound: groups, the console password, the invitation used; the done page.

The temporary password lives in the enrollment row, encrypted, until the done page shows it.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import metrics
from app.aws.errors import AwsError, EntityAlreadyExists, NoSuchEntity
from app.aws.iam import IamGateway
from app.aws.timing import in_background
from app.i18n import _
from app.security.temp_password import PasswordPolicy, generate_password
from app.services.enrollment.account import account_info
from app.services.enrollment.errors import EnrollmentExpired, FinishIncomplete, LinkUnusable
from app.services.enrollment.state import enrollee, load, password_box, record, secret_binding
from app.services.notifications import looks_like_email, send_enrolled_notice
from app.services.own_writes import recent
from app.services.portal import Actor, Portal
from app.services.webhooks import notify
from app.store.db import changed_rows
from app.store.models import Enrollment, Invitation
from app.store.states import EnrollmentState, InvitationState, WebhookEvent

log = logging.getLogger("iam_onboard.enrollment")


@dataclass(frozen=True)
class FinishReads:
    """The read the finish step needs, started while EnableMFADevice runs.

    On real AWS each call is a round trip: one read fewer one after the other on the page a
    new hire waits for. If the codes are refused, the answer is simply not used. (The groups
    are not read: AddUserToGroup of a member already in the group succeeds and changes
    nothing, in AWS as in the sandbox.)
    """

    policy: Future[dict[str, Any] | None] | None

    @classmethod
    def start(cls, portal: Portal, enr: Enrollment, inv: Invitation) -> FinishReads:
        # The same conditions as _ensure_login_profile's own read of the policy.
        wants_policy = enr.temp_password_encrypted is None and (
            not inv.existing_user or inv.replace_login_profile
        )
        return cls(
            policy=in_background(lambda: portal.iam().password_policy()) if wants_policy else None,
        )

    def settle(self) -> None:
        """Let no read outlive the request: an unused one is cancelled or waited for (its
        answer and error dropped), so none runs on unobserved after the page is sent."""
        if self.policy is not None and not self.policy.cancel():
            wait([self.policy])


def _made_user(portal: Portal, inv: Invitation) -> bool:
    """The invitation created its user a moment ago: IAM may not show it yet."""
    return not inv.existing_user and recent(portal, inv.created_at)


# -- bind: groups, console password, invitation used -----------------------------------------
def finish_enrollment(portal: Portal, *, enrollment_id: str, actor: Actor) -> None:
    """Grant what waits for MFA; safe to run again after a failure midway."""
    enr, _inv = load(portal, enrollment_id)
    finish(portal, enrollment_id, enrollee(actor, enr.user_name))


def finish(
    portal: Portal,
    enrollment_id: str,
    actor: Actor,
    *,
    reads: FinishReads | None = None,
    loaded: tuple[Enrollment, Invitation] | None = None,
) -> None:
    """`loaded`: the rows as the caller just read them, in its last transaction."""
    enr, inv = loaded or load(portal, enrollment_id)
    if enr.status == EnrollmentState.DONE:
        return
    if enr.status != EnrollmentState.ENABLED:
        raise EnrollmentExpired()
    if inv.status == InvitationState.REVOKED:
        raise LinkUnusable()
    iam = portal.iam()
    # A user the portal created a moment ago may not be seen by IAM yet (NoSuchEntity): the
    # writes naming it wait for it (app/aws/propagation.py); reads answer as IAM does.
    made_user = _made_user(portal, inv)
    writer = iam.just_created() if made_user else iam
    user = enr.user_name
    wanted = list(inv.extra_groups)
    if inv.enforce_at is not None:  # deadline mode: MFA is bound, so enforce it now
        wanted.insert(0, portal.settings.mfa_group)
    # The groups and the console password need only the bound device, not each other: on
    # real AWS each call is a round trip, so they go at once (the groups on a gateway of
    # their own: a gateway's last_request_id is not shared safely).
    groups = (
        in_background(lambda: _add_groups(portal, user, wanted, actor, made_user=made_user))
        if wanted
        else None
    )
    made_password, password_request_id = False, None
    failures: list[tuple[str, AwsError]] = []
    try:
        made_password = _ensure_login_profile(
            portal, iam, enr, inv, actor, writer=writer,
            policy=reads.policy if reads is not None else None,
        )  # fmt: skip
        password_request_id = writer.last_request_id
    except AwsError as exc:
        failures.append(("iam.create_login_profile", exc))
    if groups is not None:
        try:
            groups.result()
        except AwsError as exc:
            failures.insert(0, ("iam.add_user_to_group", exc))
    if failures:
        if made_password:  # done in AWS all the same; a retry finds it and makes no other
            _record_password(portal, actor, user, password_request_id)
        for step, problem in failures:
            record(
                portal, actor, step, user, outcome="failed", request_id=problem.request_id,
                detail=problem.message,
            )  # fmt: skip
        first = failures[0][1]
        raise FinishIncomplete(
            _(
                "Your MFA device is set up, but finishing your account did not work yet: "
                "{problem} Press Finish to try again."
            ).format(problem=first.message)
        ) from first
    now = portal.clock()
    with portal.db.session() as session:
        if made_password:  # what AWS did, recorded with the state it completes
            _record_password(portal, actor, user, password_request_id, session=session)
        session.execute(
            update(Invitation)
            .where(Invitation.id == inv.id)
            .values(status=InvitationState.USED, used_at=now)
        )
        done = changed_rows(
            session,
            update(Enrollment)
            .where(Enrollment.id == enr.id, Enrollment.status == EnrollmentState.ENABLED)
            .values(status=EnrollmentState.DONE, version=Enrollment.version + 1),
        )
        record(
            portal, actor, "enroll.done", user,
            detail=f"groups={','.join(inv.extra_groups) or '-'}", session=session,
        )  # fmt: skip
    if done:  # this request finished it (not a concurrent one)
        metrics.enrollment("done")
        metrics.invitation("enrolled")
        by = f" (invited by {inv.invited_by})" if inv.invited_by else ""
        notify(
            portal, WebhookEvent.ENROLLED, key=inv.id, user=user,
            text=f"{user} set up MFA and can now sign in to AWS{by}.",
        )  # fmt: skip
    if looks_like_email(inv.invited_by):  # the API and the CLI have no address to tell
        _notify_inviter(portal, inv.id)


def _record_password(
    portal: Portal,
    actor: Actor,
    user: str,
    request_id: str | None,
    *,
    session: Session | None = None,
) -> None:
    record(
        portal, actor, "iam.create_login_profile", user, session=session, request_id=request_id,
        detail="temporary password, change required at first sign-in",
    )  # fmt: skip


def _add_groups(
    portal: Portal, user: str, wanted: list[str], actor: Actor, *, made_user: bool
) -> None:
    """AddUserToGroup for each wanted group; a group the user is already in stays as it is."""
    iam = portal.iam().just_created() if made_user else portal.iam()
    for group in wanted:
        iam.add_user_to_group(user, group)
        record(
            portal, actor, "iam.add_user_to_group", user, request_id=iam.last_request_id,
            detail=group,
        )  # fmt: skip


def _ensure_login_profile(
    portal: Portal,
    iam: IamGateway,
    enr: Enrollment,
    inv: Invitation,
    actor: Actor,
    *,
    writer: IamGateway,
    policy: Future[dict[str, Any] | None] | None = None,
) -> bool:
    """The console password: a temporary one, kept encrypted until the done page shows it.

    True when this call made it (CreateLoginProfile was its last IAM call): the caller records
    it with the finished state.
    """
    user = enr.user_name
    if enr.temp_password_encrypted is None:
        if inv.existing_user and not inv.replace_login_profile and iam.login_profile(user):
            return False  # they keep signing in with their own password
        rules = PasswordPolicy.from_aws(
            policy.result() if policy is not None else iam.password_policy()
        )
        sealed = password_box(portal).encrypt(
            generate_password(rules), bound_to=secret_binding(enr.id)
        )
        # Kept (encrypted) before AWS gets it, so a crash after CreateLoginProfile cannot lose
        # it; conditional, so a concurrent finish uses the same password.
        with portal.db.session() as session:
            session.execute(
                update(Enrollment)
                .where(Enrollment.id == enr.id, Enrollment.temp_password_encrypted.is_(None))
                .values(temp_password_encrypted=sealed)
            )
            stored = session.scalar(
                select(Enrollment.temp_password_encrypted).where(Enrollment.id == enr.id)
            )
        assert stored is not None
        password = password_box(portal).decrypt(stored, bound_to=secret_binding(enr.id))
    else:
        password = password_box(portal).decrypt(
            enr.temp_password_encrypted, bound_to=secret_binding(enr.id)
        )
        if not inv.replace_login_profile and iam.login_profile(user):
            return False  # made by the earlier, interrupted run with this same password
    if inv.replace_login_profile:
        try:
            iam.delete_login_profile(user)
        except NoSuchEntity:
            pass
    try:
        writer.create_login_profile(user, password)
    except EntityAlreadyExists:
        return False  # a concurrent run made it with the stored password
    return True


def _notify_inviter(portal: Portal, invitation_id: str) -> None:
    # A mail problem must never undo or block a finished enrollment.
    try:
        send_enrolled_notice(portal, invitation_id=invitation_id)
    except Exception as exc:
        log.warning("could not queue the enrolled notice: %s", type(exc).__name__)


# -- done page -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DoneView:
    user_name: str
    account_id: str
    account_label: str
    console_url: str
    device_serial: str
    region: str
    temp_password: str | None  # only the first time the page is shown
    kept_password: bool  # an existing user keeps their own console password
    already_shown: bool


def reveal_done(portal: Portal, *, enrollment_id: str) -> DoneView:
    """The sign-in details; the temporary password is handed out once, then deleted."""
    with portal.db.session() as session:
        enr = session.get(Enrollment, enrollment_id)
        if enr is None or enr.status != EnrollmentState.DONE:
            raise EnrollmentExpired()
        sealed = enr.temp_password_encrypted
        first = False
        if enr.done_shown_at is None:
            # Conditional, so two tabs opening the page at once cannot both get the password.
            changed = changed_rows(
                session,
                update(Enrollment)
                .where(Enrollment.id == enrollment_id, Enrollment.done_shown_at.is_(None))
                .values(
                    done_shown_at=portal.clock(),
                    temp_password_encrypted=None,
                    version=Enrollment.version + 1,
                ),
            )
            first = changed == 1
    sealed = sealed if first else None
    password = (
        password_box(portal).decrypt(sealed, bound_to=secret_binding(enrollment_id))
        if sealed
        else None
    )
    account = account_info(portal)
    return DoneView(
        user_name=enr.user_name,
        account_id=account.account_id,
        account_label=account.label,
        console_url=account.console_url,
        device_serial=enr.device_serial or "",
        region=portal.settings.aws_region,
        temp_password=password,
        kept_password=first and password is None,
        already_shown=not first,
    )

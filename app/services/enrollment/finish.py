"""After MFA is bound: groups, the console password, the invitation used; the done page.

The temporary password lives in the enrollment row, encrypted, until the done page shows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import metrics
from app.aws.errors import AwsError, EntityAlreadyExists, NoSuchEntity, PasswordPolicyViolation
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


def first_password(portal: Portal, enr: Enrollment, inv: Invitation) -> str | None:
    """The temporary console password, sealed, for the caller to store with the bound device's
    state; None when this enrollment makes none (or has one already).

    It is drawn without reading the account's password policy: it has every character class
    IAM knows and 24 characters, so it meets any policy asking for no more. A longer minimum is
    read only when CreateLoginProfile refuses it (`_ensure_login_profile`): on real AWS a read
    of the policy is one more round trip, and nearly every enrollment would wait for it.
    """
    # The same conditions as _ensure_login_profile's own making of the password.
    wants_password = enr.temp_password_encrypted is None and (
        not inv.existing_user or inv.replace_login_profile
    )
    return _seal(portal, enr.id, generate_password()) if wants_password else None


def _seal(portal: Portal, enrollment_id: str, password: str) -> str:
    return password_box(portal).encrypt(password, bound_to=secret_binding(enrollment_id))


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
    loaded: tuple[Enrollment, Invitation] | None = None,
    password_stored_now: bool = False,
) -> None:
    """`loaded`: the rows as the caller just read them, in its last transaction;
    `password_stored_now`: the caller stored the temporary password with the bound device's
    state in that transaction, so no earlier run can have given it to AWS."""
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
    added: list[tuple[str, str | None]] = []  # recorded below, with what they complete
    groups = (
        in_background(lambda: _add_groups(portal, user, wanted, added, made_user=made_user))
        if wanted
        else None
    )
    made_password, password_request_id = False, None
    failures: list[tuple[str, AwsError]] = []
    try:
        made_password = _ensure_login_profile(
            portal, iam, enr, inv, actor, writer=writer, stored_now=password_stored_now,
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
        # Done in AWS all the same; a retry finds them and makes no other.
        _record_groups(portal, actor, user, added)
        if made_password:
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
        # What AWS did, recorded with the state it completes.
        _record_groups(portal, actor, user, added, session=session)
        if made_password:
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
    portal: Portal,
    user: str,
    wanted: list[str],
    added: list[tuple[str, str | None]],
    *,
    made_user: bool,
) -> None:
    """AddUserToGroup for each wanted group; a group the user is already in stays as it is.

    Each group added goes into `added` with its request id, for the caller to record with the
    finished state (a commit of its own each would be more work while the new hire waits).
    """
    iam = portal.iam().just_created() if made_user else portal.iam()
    for group in wanted:
        iam.add_user_to_group(user, group)
        added.append((group, iam.last_request_id))


def _record_groups(
    portal: Portal,
    actor: Actor,
    user: str,
    added: list[tuple[str, str | None]],
    *,
    session: Session | None = None,
) -> None:
    if not added:
        return
    if session is None:
        with portal.db.session() as own:
            _record_groups(portal, actor, user, added, session=own)
        return
    for group, request_id in added:
        record(
            portal, actor, "iam.add_user_to_group", user, request_id=request_id, detail=group,
            session=session,
        )  # fmt: skip


def _ensure_login_profile(
    portal: Portal,
    iam: IamGateway,
    enr: Enrollment,
    inv: Invitation,
    actor: Actor,
    *,
    writer: IamGateway,
    stored_now: bool = False,
) -> bool:
    """The console password: a temporary one, kept encrypted until the done page shows it.

    True when this call made it (CreateLoginProfile was its last IAM call): the caller records
    it with the finished state.
    """
    user = enr.user_name
    sealed = enr.temp_password_encrypted
    if sealed is None:
        if inv.existing_user and not inv.replace_login_profile and iam.login_profile(user):
            return False  # they keep signing in with their own password
        sealed = _store_password(portal, enr.id, None, generate_password())
    else:
        earlier_run = not stored_now and not inv.replace_login_profile
        if earlier_run and iam.login_profile(user):
            return False  # made by the earlier, interrupted run with this same password
    if inv.replace_login_profile:
        try:
            iam.delete_login_profile(user)
        except NoSuchEntity:
            pass
    try:
        return _create_login_profile(portal, writer, enr.id, user, sealed)
    except PasswordPolicyViolation:
        # The account asks for more than first_password's 24 characters: read its policy, once.
        longer = generate_password(PasswordPolicy.from_aws(iam.password_policy()))
        sealed = _store_password(portal, enr.id, sealed, longer)
        return _create_login_profile(portal, writer, enr.id, user, sealed)


def _create_login_profile(
    portal: Portal, writer: IamGateway, enrollment_id: str, user: str, sealed: str
) -> bool:
    password = password_box(portal).decrypt(sealed, bound_to=secret_binding(enrollment_id))
    try:
        writer.create_login_profile(user, password)
    except EntityAlreadyExists:
        return False  # a concurrent run made it with the stored password
    return True


def _store_password(
    portal: Portal, enrollment_id: str, replacing: str | None, password: str
) -> str:
    """Keep the password (sealed) before AWS gets it, so a crash after CreateLoginProfile cannot
    lose it; conditional on the one it replaces, so concurrent finishes use the same password.
    Returns the sealed password stored."""
    with portal.db.session() as session:
        was = Enrollment.temp_password_encrypted
        session.execute(
            update(Enrollment)
            .where(Enrollment.id == enrollment_id)
            .where(was.is_(None) if replacing is None else was == replacing)
            .values(temp_password_encrypted=_seal(portal, enrollment_id, password))
        )
        stored = session.scalar(
            select(Enrollment.temp_password_encrypted).where(Enrollment.id == enrollment_id)
        )
    assert stored is not None
    return stored


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

"""The two codes: checked locally, then EnableMFADevice, then the finish step."""

from __future__ import annotations

import re

from sqlalchemy import delete, select, update

from app import metrics
from app.aws.errors import AwsError, EntityAlreadyExists, InvalidAuthenticationCode
from app.aws.iam import IamGateway
from app.i18n import _, ngettext
from app.security.totp import CodeProblem, check_code_pair
from app.services.enrollment.device import delete_device, device_assigned
from app.services.enrollment.errors import (
    MAX_FAILED_TRIES,
    CodeRejected,
    EnrollmentExpired,
    EnrollmentLocked,
    LinkUnusable,
)
from app.services.enrollment.finish import finish, first_password
from app.services.enrollment.state import (
    enrollee,
    load,
    read_seed,
    record,
    require_open,
    set_status,
    wait_while,
)
from app.services.own_writes import device_reader, recent
from app.services.portal import Actor, Portal
from app.services.webhooks import notify, stamp
from app.store.db import changed_rows
from app.store.models import Enrollment, Invitation, WebSession
from app.store.states import EnrollmentState, WebhookEvent

_SPACES = re.compile(r"\s+")


def _clean(code: str) -> str:
    return _SPACES.sub("", code or "")


def _problem_message(problem: CodeProblem, skew_minutes: int | None) -> str:
    if problem is CodeProblem.NOT_CONSECUTIVE:
        return _(
            "Both codes are right, but they are not one right after the other. Type the code "
            "your app shows, wait until it changes, then type the new one."
        )
    if problem is CodeProblem.REUSED:
        return _(
            "These codes were already used. Wait until your app shows a new code, then type "
            "it and the one after it."
        )
    if problem is CodeProblem.CLOCK_SKEW:
        minutes = abs(skew_minutes or 0)
        return ngettext(
            "The codes are right, but your phone's clock looks off by about {n} minute. Set "
            "your phone's date and time to automatic, then type two new codes.",
            "The codes are right, but your phone's clock looks off by about {n} minutes. Set "
            "your phone's date and time to automatic, then type two new codes.",
            minutes,
        ).format(n=minutes)
    return _(
        "These codes do not match this QR code. Check that your app shows the account "
        "scanned from this page, then type its current code and the next one."
    )


def _tries_left_text(left: int) -> str:
    return ngettext("{n} try left.", "{n} tries left.", left).format(n=left)


def _count_failed_try(
    portal: Portal, enr: Enrollment, actor: Actor, detail: str, request_id: str | None = None
) -> int:
    """One more failed try on the invitation (so starting over does not reset it)."""
    now = portal.clock()
    with portal.db.session() as s:
        s.execute(
            update(Invitation)
            .where(Invitation.id == enr.invitation_id)
            .values(failed_attempts=Invitation.failed_attempts + 1)
        )
        inv = s.scalars(
            select(Invitation)
            .where(Invitation.id == enr.invitation_id)
            .execution_options(populate_existing=True)
        ).one()
        failed = inv.failed_attempts
        lock = failed >= MAX_FAILED_TRIES and inv.locked_at is None
        if lock:
            inv.locked_at = now
            s.execute(
                update(Enrollment)
                .where(Enrollment.id == enr.id)
                .values(
                    status=EnrollmentState.LOCKED,
                    seed_encrypted=None,
                    version=Enrollment.version + 1,
                )
            )
            # Only a new link from the admin goes on from here, not a session opened before.
            s.execute(delete(WebSession).where(WebSession.enrollment_id == enr.id))
    record(
        portal, actor, "enroll.verify", enr.user_name, outcome="failed",
        request_id=request_id, detail=f"{detail}; failed tries {failed}/{MAX_FAILED_TRIES}",
    )  # fmt: skip
    metrics.enrollment("wrong_code")
    if lock:
        record(portal, actor, "enroll.locked", enr.user_name, outcome="failed")
        metrics.enrollment("locked")
        notify(
            portal, WebhookEvent.LOCKED, key=f"{enr.invitation_id}:{stamp(now)}",
            user=enr.user_name,
            text=f"The MFA enrollment of {enr.user_name} locked after {failed} wrong codes; "
            "an admin's new link is needed.",
        )  # fmt: skip
        if enr.device_serial:
            # A device made a moment ago may not be seen yet: wait for it.
            on = device_reader(
                portal, portal.iam(), user_name=enr.user_name, serial=enr.device_serial,
                made_at=enr.device_created_at,
            )  # fmt: skip
            delete_device(portal, on, enr.device_serial, enr.user_name, actor)
    return max(0, MAX_FAILED_TRIES - failed)


def _failed_try(
    portal: Portal,
    enr: Enrollment,
    actor: Actor,
    message: str,
    detail: str,
    request_id: str | None = None,
) -> CodeRejected:
    """Count a failed try and return the error to raise; raises EnrollmentLocked at the last."""
    left = _count_failed_try(portal, enr, actor, detail, request_id)
    if left == 0:
        raise EnrollmentLocked()
    return CodeRejected(f"{message} {_tries_left_text(left)}", field="_form")


def verify_codes(
    portal: Portal, *, enrollment_id: str, code1: str, code2: str, actor: Actor
) -> None:
    """Check two consecutive codes locally, then EnableMFADevice, then grant access."""
    enr, inv = load(portal, enrollment_id)
    actor = enrollee(actor, enr.user_name)
    if enr.status in (EnrollmentState.ENABLED, EnrollmentState.DONE):
        finish(portal, enrollment_id, actor)
        return  # a double-submitted form: the first one already bound the device
    require_open(inv)
    if enr.status == EnrollmentState.ENABLING:
        _after_other_request(portal, enrollment_id, actor)
        return
    now = portal.clock()
    if (
        enr.status != EnrollmentState.DEVICE_CREATED
        or enr.seed_encrypted is None
        or enr.expires_at <= now
    ):
        raise EnrollmentExpired()
    c1, c2 = _clean(code1), _clean(code2)
    for name, value in (("code1", c1), ("code2", c2)):
        if not re.fullmatch(r"[0-9]{6}", value):
            raise CodeRejected(_("Type the 6 digits your app shows."), field=name)
    seed = read_seed(portal, enr)
    if seed is None:
        raise EnrollmentExpired()
    check = check_code_pair(
        seed=seed, code1=c1, code2=c2, now=now.timestamp(), used_steps=enr.used_steps
    )
    if not check.ok:
        assert check.problem is not None
        message = _problem_message(check.problem, check.skew_minutes)
        if check.problem is CodeProblem.REUSED:
            # Not a guess: whoever types valid codes holds the phone. No try counted.
            record(
                portal, actor, "enroll.verify", enr.user_name, outcome="failed",
                detail="reused codes",
            )  # fmt: skip
            raise CodeRejected(message, field="_form")
        raise _failed_try(portal, enr, actor, message, check.problem.value)
    assert check.step is not None
    # Record both steps before calling AWS: a replay or a concurrent double submit sees them,
    # and the version check lets exactly one request go on to EnableMFADevice.
    with portal.db.session() as session:
        claimed = changed_rows(
            session,
            update(Enrollment)
            .where(Enrollment.id == enr.id, Enrollment.version == enr.version)
            .where(Enrollment.status == EnrollmentState.DEVICE_CREATED)
            .values(
                used_steps=[*enr.used_steps, check.step, check.step + 1],
                status=EnrollmentState.ENABLING,
                version=enr.version + 1,
            ),
        )
    if claimed != 1:
        _after_other_request(portal, enrollment_id, actor)
        return
    now_enr, now_inv, stored = _enable(
        portal,
        enr,
        c1,
        c2,
        actor,
        version=enr.version + 1,
        password=first_password(portal, enr, inv),
    )
    finish(portal, enrollment_id, actor, loaded=(now_enr, now_inv), password_stored_now=stored)


def _enable(
    portal: Portal,
    enr: Enrollment,
    code1: str,
    code2: str,
    actor: Actor,
    *,
    version: int,
    password: str | None,
) -> tuple[Enrollment, Invitation, bool]:
    """EnableMFADevice (an error that may hide a success is checked with ListMFADevices); on
    failure the enrollment reopens.

    `password`: the temporary console password (sealed), stored with the bound device's state.
    Returns the enrollment and its invitation as they are after the device is bound, and
    whether that password was stored with that state.
    """
    iam = portal.iam()
    user, serial = enr.user_name, enr.device_serial
    assert serial is not None
    # The device (and for a new hire, the user) was created a moment ago: IAM may not show it
    # yet (app/aws/propagation.py). The codes are spent once sent, so wait rather than fail.
    enabling = iam.just_created() if recent(portal, enr.device_created_at) else iam
    try:
        enabling.enable_mfa_device(user, serial, code1, code2)
    except InvalidAuthenticationCode as exc:
        set_status(portal, enr.id, version, status=EnrollmentState.DEVICE_CREATED)
        message = _("AWS did not accept these codes. Wait for a new code, then try again.")
        raise _failed_try(
            portal, enr, actor, message, "AWS: InvalidAuthenticationCode", exc.request_id
        ) from exc
    except AwsError as exc:
        # e.g. EntityAlreadyExists when a timed-out first attempt did go through: ask IAM,
        # which may not list that binding yet (it says it exists: wait for the list to show it).
        if not _bound_after_all(iam, user, serial, exc):
            set_status(portal, enr.id, version, status=EnrollmentState.DEVICE_CREATED)
            record(
                portal, actor, "iam.enable_mfa_device", user, outcome="failed",
                request_id=exc.request_id, detail=exc.message,
            )  # fmt: skip
            raise CodeRejected(exc.message, field="_form") from exc
        request_id = exc.request_id
    else:
        # A success answer is AWS binding the device; no ListMFADevices after it (another
        # round trip the new hire waits for, and under IAM's eventual consistency a read
        # right after the write may not show it yet).
        request_id = enabling.last_request_id
    # The console password (sealed) is kept with the bound device's state, before AWS gets it:
    # a crash after CreateLoginProfile cannot lose it, and it costs no write of its own.
    keep = {} if password is None else {"temp_password_encrypted": password}
    # What AWS did is recorded with the status it brings, in one transaction: the record
    # stands even when the conditional update finds the row changed (and changes nothing).
    with portal.db.session() as session:
        record(
            portal, actor, "iam.enable_mfa_device", user, request_id=request_id, detail=serial,
            session=session,
        )  # fmt: skip
        changed = set_status(
            portal, enr.id, version, session=session, status=EnrollmentState.ENABLED,
            enabled_at=portal.clock(), seed_encrypted=None, **keep,
        )  # fmt: skip
        now_enr = session.get(Enrollment, enr.id)
        now_inv = session.get(Invitation, enr.invitation_id)
    if now_enr is None or now_inv is None:  # checked once the record has landed
        raise LinkUnusable()
    return now_enr, now_inv, changed and password is not None


def _bound_after_all(iam: IamGateway, user: str, serial: str, exc: AwsError) -> bool:
    """Whether IAM shows the device bound to the user after EnableMFADevice failed."""

    def bound() -> bool:
        return device_assigned(iam, user, serial) is True

    return iam.until_seen(bound) if isinstance(exc, EntityAlreadyExists) else bound()


def _after_other_request(portal: Portal, enrollment_id: str, actor: Actor) -> None:
    """A second submit of the same form: follow the first one instead of calling AWS again."""
    # The first request binds the device, then grants access: wait for both.
    enr = wait_while(portal, enrollment_id, EnrollmentState.ENABLING, EnrollmentState.ENABLED)
    if enr.status == EnrollmentState.ENABLING:
        # The other request died mid-call; IAM says whether the device got bound.
        assigned = enr.device_serial is not None and device_assigned(
            portal.iam(), enr.user_name, enr.device_serial
        )
        if assigned:
            now = portal.clock()
            set_status(
                portal,
                enr.id,
                enr.version,
                status=EnrollmentState.ENABLED,
                enabled_at=now,
                seed_encrypted=None,
            )
        else:
            set_status(portal, enr.id, enr.version, status=EnrollmentState.DEVICE_CREATED)
        enr, _inv = load(portal, enrollment_id)
    if enr.status in (EnrollmentState.ENABLED, EnrollmentState.DONE):
        finish(portal, enrollment_id, actor)
        return
    if enr.status == EnrollmentState.LOCKED:
        raise EnrollmentLocked()
    raise CodeRejected(_problem_message(CodeProblem.REUSED, None), field="_form")

"""The new hire's enrollment: link -> virtual MFA device -> two codes -> console sign-in details.

The wizard's state is one Enrollment row per invitation (same id, so a double-clicked start
cannot make two). The seed lives only in that row, encrypted, between device creation and
EnableMFADevice; the temporary password lives there, encrypted, until the done page shows it.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import weakref
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.aws.errors import (
    AwsError,
    DeleteConflict,
    EntityAlreadyExists,
    InvalidAuthenticationCode,
    NoSuchEntity,
)
from app.aws.iam import IamGateway, VirtualDevice, in_background
from app.aws.ownership import DEVICE_PATH
from app.errors import PortalError, ValidationError
from app.i18n import _, ngettext
from app.security.secretbox import SecretBox, SecretBoxError, secret_box
from app.security.temp_password import PasswordPolicy, generate_password
from app.security.tokens import hash_token
from app.security.totp import CodeProblem, check_code_pair, otpauth_uri
from app.services import audit
from app.services.notifications import looks_like_email, send_enrolled_notice
from app.services.portal import SYSTEM_ACTOR, Actor, Portal
from app.store.db import changed_rows
from app.store.models import Enrollment, Invitation, WebSession

log = logging.getLogger("iam_onboard.enrollment")

MAX_FAILED_TRIES = 5
# A device being created (status "started") by another request for longer than this was
# abandoned by a crashed request and may be taken over.
_CREATION_STALE = timedelta(seconds=60)
# How long a double-submitted form waits for the request that got there first.
_WAIT_FOR_OTHER_SECONDS = 20.0
_ACCOUNT_TTL_SECONDS = 300.0
_SPACES = re.compile(r"\s+")


# -- errors ---------------------------------------------------------------------------------
class LinkUnusable(PortalError):
    """Unknown, expired, used and revoked links all get this one answer (nothing to probe)."""

    status = 404
    code = "link_unusable"

    def __init__(self) -> None:
        super().__init__(
            _("This link can't be used any more. Ask the person who invited you for a new one.")
        )


class EnrollmentLocked(PortalError):
    status = 403
    code = "enrollment_locked"

    def __init__(self) -> None:
        super().__init__(
            _(
                "This link is locked after {n} wrong tries. Ask the person who invited you "
                "to send you a new link."
            ).format(n=MAX_FAILED_TRIES)
        )


class EnrollmentExpired(PortalError):
    status = 409
    code = "enrollment_expired"

    def __init__(self) -> None:
        super().__init__(_("The time to add this code ran out. Start again to get a new QR code."))


class CodeRejected(ValidationError):
    """The two codes were refused; `field` is code1, code2 or _form."""

    code = "code_rejected"


class FinishIncomplete(PortalError):
    """MFA is bound but granting access failed; finish_enrollment can be run again."""

    status = 503
    code = "enrollment_incomplete"


# -- account facts (read-only, cached per process) -------------------------------------------
@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    alias: str | None

    @property
    def label(self) -> str:
        return self.alias or self.account_id

    @property
    def issuer(self) -> str:
        return self.alias or f"AWS {self.account_id}"

    @property
    def console_url(self) -> str:
        return f"https://{self.label}.signin.aws.amazon.com/console"


_account_cache: dict[int, tuple[weakref.ref[Any], float, AccountInfo]] = {}
_account_lock = threading.Lock()


def account_info(portal: Portal) -> AccountInfo:
    """The account id and alias; cached a few minutes per IAM client (both rarely change)."""
    client = portal.iam_clients[0]
    now = time.monotonic()
    with _account_lock:
        cached = _account_cache.get(id(client))
        if cached is not None and cached[0]() is client and cached[1] > now:
            return cached[2]
    iam = portal.iam()
    info = AccountInfo(account_id=iam.caller_identity()["account"], alias=iam.account_alias())
    with _account_lock:
        for key in [k for k, v in _account_cache.items() if v[0]() is None]:
            del _account_cache[key]
        _account_cache[id(client)] = (weakref.ref(client), now + _ACCOUNT_TTL_SECONDS, info)
    return info


# -- helpers --------------------------------------------------------------------------------
def _seed_box(portal: Portal) -> SecretBox:
    return secret_box(portal.settings.secret_key, "mfa-seed")


def _password_box(portal: Portal) -> SecretBox:
    return secret_box(portal.settings.secret_key, "temp-password")


def _bound(enrollment_id: str) -> str:
    return f"enrollment:{enrollment_id}"


def _enrollee(actor: Actor, user_name: str) -> Actor:
    return Actor(f"enrollee:{user_name}", actor.source_ip)


def _record(
    portal: Portal,
    actor: Actor,
    action: str,
    user: str,
    *,
    outcome: str = "ok",
    request_id: str | None = None,
    detail: str | None = None,
    session: Session | None = None,
) -> None:
    audit.record(
        portal, actor=actor, action=action, target_user=user, outcome=outcome,
        aws_request_id=request_id, detail=detail, session=session,
    )  # fmt: skip


def _invitation_for_token(portal: Portal, token: str, session: Session | None = None) -> Invitation:
    """The pending, unexpired invitation of a token; every other case is LinkUnusable."""
    if not token or len(token) > 200:
        raise LinkUnusable()
    if session is None:
        with portal.db.session() as own:
            return _invitation_for_token(portal, token, own)
    inv = session.scalars(
        select(Invitation).where(Invitation.token_hash == hash_token(token))
    ).first()
    if inv is None or inv.status != "pending" or inv.expires_at <= portal.clock():
        raise LinkUnusable()
    if inv.locked_at is not None:
        raise EnrollmentLocked()
    return inv


def _load(portal: Portal, enrollment_id: str) -> tuple[Enrollment, Invitation]:
    with portal.db.session() as session:
        return _load_on(session, enrollment_id)


def _load_on(session: Session, enrollment_id: str) -> tuple[Enrollment, Invitation]:
    enr = session.get(Enrollment, enrollment_id)
    inv = session.get(Invitation, enr.invitation_id) if enr is not None else None
    if enr is None or inv is None:
        raise LinkUnusable()
    return enr, inv


def _require_open(inv: Invitation) -> None:
    if inv.locked_at is not None:
        raise EnrollmentLocked()
    if inv.status != "pending":
        raise LinkUnusable()


def _delete_device(portal: Portal, iam: IamGateway, serial: str, user: str, actor: Actor) -> None:
    """Best effort: delete a device nobody has bound; AWS refuses a bound one (DeleteConflict)."""
    try:
        iam.delete_virtual_mfa_device(serial)
    except (NoSuchEntity, DeleteConflict):
        return
    except AwsError as exc:
        log.warning("could not delete unassigned MFA device of %s: %s", user, exc.code)
        return
    _record(
        portal, actor, "iam.delete_virtual_mfa_device", user,
        request_id=iam.last_request_id, detail=f"{serial} (unassigned)",
    )  # fmt: skip


def _device_assigned(iam: IamGateway, user: str, serial: str) -> bool | None:
    """Whether ListMFADevices shows the device bound to the user; None if IAM cannot say."""
    try:
        return any(d.serial == serial for d in iam.mfa_devices(user))
    except AwsError:
        return None


# -- landing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Welcome:
    user_name: str
    invited_by: str | None  # an email address, or None for the CLI or the API
    account_label: str
    expires_at: datetime
    note: str | None
    existing_user: bool


def welcome(portal: Portal, *, token: str) -> Welcome:
    """What the landing page shows; reads only (mail scanners open links too)."""
    inv = _invitation_for_token(portal, token)
    return Welcome(
        user_name=inv.user_name,
        invited_by=inv.invited_by if "@" in inv.invited_by else None,
        account_label=account_info(portal).label,
        expires_at=inv.expires_at,
        note=inv.note,
        existing_user=inv.existing_user,
    )


# -- start: token -> enrollment row + device --------------------------------------------------
def start_enrollment(portal: Portal, *, token: str, actor: Actor) -> str:
    """Exchange the link for the invitation's enrollment (new or resumed); returns its id.

    The link keeps working until the enrollment completes: a person who lost the session
    cookie opens it again. Call prepare_device next.
    """
    now = portal.clock()
    refused: PortalError | None = None
    try:
        with portal.db.session() as session:  # the lookup and the new row: one transaction
            try:
                inv = _invitation_for_token(portal, token, session)
            except PortalError as exc:
                # Recorded in this transaction, raised once it has committed.
                audit.record(
                    portal, actor=actor, action="enroll.start", outcome="failed",
                    detail=exc.code, session=session,
                )  # fmt: skip
                refused = exc
            else:
                # One row per invitation: its id is the invitation's, so two starts cannot race.
                if session.get(Enrollment, inv.id) is None:
                    session.add(
                        Enrollment(
                            id=inv.id, invitation_id=inv.id, user_name=inv.user_name,
                            status="started", created_at=now, expires_at=now + _ttl(portal),
                            used_steps=[], version=0,
                        )
                    )  # fmt: skip
                    session.flush()  # a second click's row raises IntegrityError here
                _record(
                    portal, _enrollee(actor, inv.user_name), "enroll.start", inv.user_name,
                    session=session,
                )  # fmt: skip
    except IntegrityError:
        # the other click made it
        _record(portal, _enrollee(actor, inv.user_name), "enroll.start", inv.user_name)
    if refused is not None:
        raise refused
    return inv.id


def prepare_device(portal: Portal, *, enrollment_id: str, actor: Actor) -> None:
    """Give the enrollment a device to scan: the live one, else a new one (old one deleted).

    A device younger than the TTL is kept; otherwise this request claims the creation (an
    optimistic version check, so one request creates it) and makes a new one.
    """
    now = portal.clock()
    with portal.db.session() as session:  # the checks and the claim in one transaction
        enr, inv = _load_on(session, enrollment_id)
        _require_open(inv)
        needs_device = _needs_device(enr, now)
        if inv.expires_at <= now and needs_device:
            raise LinkUnusable()
        old_serial, user, version = enr.device_serial, enr.user_name, enr.version + 1
        claimed = needs_device and _set_status(
            portal,
            enrollment_id,
            version - 1,
            session=session,
            status="started",
            device_created_at=now,
            expires_at=now + _ttl(portal),
        )
    if not claimed:
        _wait_while(portal, enrollment_id, "started")
        return
    actor = _enrollee(actor, user)
    _replace_device(portal, enrollment_id, user, actor, old_serial=old_serial, version=version)


def _ttl(portal: Portal) -> timedelta:
    return timedelta(minutes=portal.settings.enrollment_ttl_minutes)


def _needs_device(enr: Enrollment, now: datetime) -> bool:
    if enr.status in ("enabling", "enabled", "done"):
        return False
    if enr.status == "device_created":
        return enr.seed_encrypted is None or enr.expires_at <= now
    if enr.status == "started" and enr.device_created_at is not None:
        # another request is creating the device right now, unless it died doing so
        return now - enr.device_created_at >= _CREATION_STALE
    return True  # started (fresh), expired, locked (a resend unlocked the invitation)


def _replace_device(
    portal: Portal,
    enrollment_id: str,
    user: str,
    actor: Actor,
    *,
    old_serial: str | None,
    version: int,
) -> None:
    """Create the device a claimed enrollment (at `version`) waits for; delete the old one."""
    iam = portal.iam()
    if old_serial:
        _delete_device(portal, iam, old_serial, user, actor)
    try:
        device = _create_device(portal, iam, user, actor)
    except AwsError as exc:
        _set_status(portal, enrollment_id, version, device_created_at=None)  # nobody creates now
        _record(
            portal, actor, "iam.create_virtual_mfa_device", user, outcome="failed",
            request_id=exc.request_id, detail=exc.message,
        )  # fmt: skip
        raise
    request_id = iam.last_request_id
    now = portal.clock()
    sealed = _seed_box(portal).encrypt(device.seed, bound_to=_bound(enrollment_id))
    # What AWS did is recorded with the device stored, in one transaction: the record stands
    # even when the conditional update finds the row changed (and stores nothing).
    with portal.db.session() as session:
        _record(
            portal, actor, "iam.create_virtual_mfa_device", user, request_id=request_id,
            detail=device.serial, session=session,
        )  # fmt: skip
        stored = _set_status(
            portal, enrollment_id, version, session=session, status="device_created",
            device_serial=device.serial, seed_encrypted=sealed, device_created_at=now,
            expires_at=now + _ttl(portal), used_steps=[],
        )  # fmt: skip
    if not stored:
        log.warning("enrollment %s changed while its device was created", enrollment_id)


def _create_device(portal: Portal, iam: IamGateway, user: str, actor: Actor) -> VirtualDevice:
    """CreateVirtualMFADevice named after the user; a leftover unassigned one is deleted first."""
    try:
        return iam.create_virtual_mfa_device(user)
    except EntityAlreadyExists:
        pass
    suffix = f":mfa{DEVICE_PATH}{user}"  # the portal's own devices only
    leftovers = [
        d.serial for d in iam.virtual_mfa_devices("Unassigned") if d.serial.endswith(suffix)
    ]
    if leftovers:
        for serial in leftovers:
            _delete_device(portal, iam, serial, user, actor)
        try:
            return iam.create_virtual_mfa_device(user)
        except EntityAlreadyExists:
            pass
    # A device of that name is bound (an existing user's own phone): never touch it, and
    # use another name (under the portal's path too).
    return iam.create_virtual_mfa_device(f"{user}-{secrets.token_hex(3)}")


def _wait_while(portal: Portal, enrollment_id: str, *statuses: str) -> Enrollment:
    """Wait (bounded) while another request holds the enrollment in one of `statuses`."""
    deadline = time.monotonic() + _WAIT_FOR_OTHER_SECONDS
    while True:
        with portal.db.session() as s:
            enr = s.get(Enrollment, enrollment_id)
        assert enr is not None
        if enr.status not in statuses or time.monotonic() >= deadline:
            return enr
        time.sleep(0.2)


# -- the scan page ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ScanDetails:
    seed: str
    otpauth_uri: str
    issuer: str
    device_serial: str


@dataclass(frozen=True)
class EnrollmentView:
    """What GET /enroll shows; `stage` is one of scan, preparing, retry, expired, checking,
    finish or done."""

    stage: str
    user_name: str
    account_label: str
    expires_at: datetime
    tries_left: int
    scan: ScanDetails | None = None


def _seed(portal: Portal, enr: Enrollment) -> str | None:
    if enr.seed_encrypted is None:
        return None
    try:
        return _seed_box(portal).decrypt(enr.seed_encrypted, bound_to=_bound(enr.id))
    except SecretBoxError:
        log.warning("the seed of enrollment %s cannot be decrypted (secret key changed?)", enr.id)
        return None


def enrollment_view(portal: Portal, *, enrollment_id: str) -> EnrollmentView:
    """The enrollment as it stands, for display; reads only."""
    enr, inv = _load(portal, enrollment_id)
    if enr.status != "done":
        _require_open(inv)
    account = account_info(portal)
    now = portal.clock()
    tries_left = max(0, MAX_FAILED_TRIES - inv.failed_attempts)

    def view(stage: str, scan: ScanDetails | None = None) -> EnrollmentView:
        return EnrollmentView(stage, enr.user_name, account.label, enr.expires_at, tries_left, scan)

    simple = {"done": "done", "enabled": "finish", "enabling": "checking"}
    if enr.status in simple:
        return view(simple[enr.status])
    if enr.status == "started":
        return view("preparing" if not _needs_device(enr, now) else "retry")
    seed = _seed(portal, enr) if enr.status == "device_created" and enr.expires_at > now else None
    if seed is None or enr.device_serial is None:
        return view("expired")
    scan = ScanDetails(
        seed=seed,
        otpauth_uri=otpauth_uri(seed=seed, issuer=account.issuer, account_name=enr.user_name),
        issuer=account.issuer,
        device_serial=enr.device_serial,
    )
    return view("scan", scan)


# -- verify ----------------------------------------------------------------------------------
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
                .values(status="locked", seed_encrypted=None, version=Enrollment.version + 1)
            )
            # Only a new link from the admin goes on from here, not a session opened before.
            s.execute(delete(WebSession).where(WebSession.enrollment_id == enr.id))
    _record(
        portal, actor, "enroll.verify", enr.user_name, outcome="failed",
        request_id=request_id, detail=f"{detail}; failed tries {failed}/{MAX_FAILED_TRIES}",
    )  # fmt: skip
    if lock:
        _record(portal, actor, "enroll.locked", enr.user_name, outcome="failed")
        if enr.device_serial:
            _delete_device(portal, portal.iam(), enr.device_serial, enr.user_name, actor)
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
    enr, inv = _load(portal, enrollment_id)
    actor = _enrollee(actor, enr.user_name)
    if enr.status in ("enabled", "done"):
        _finish(portal, enrollment_id, actor)
        return  # a double-submitted form: the first one already bound the device
    _require_open(inv)
    if enr.status == "enabling":
        _after_other_request(portal, enrollment_id, actor)
        return
    now = portal.clock()
    if enr.status != "device_created" or enr.seed_encrypted is None or enr.expires_at <= now:
        raise EnrollmentExpired()
    c1, c2 = _clean(code1), _clean(code2)
    for name, value in (("code1", c1), ("code2", c2)):
        if not re.fullmatch(r"[0-9]{6}", value):
            raise CodeRejected(_("Type the 6 digits your app shows."), field=name)
    seed = _seed(portal, enr)
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
            _record(
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
            .where(Enrollment.status == "device_created")
            .values(
                used_steps=[*enr.used_steps, check.step, check.step + 1],
                status="enabling",
                version=enr.version + 1,
            ),
        )
    if claimed != 1:
        _after_other_request(portal, enrollment_id, actor)
        return
    reads = _FinishReads.start(portal, enr, inv)  # beside EnableMFADevice, not after it
    try:
        enabled = _enable(portal, enr, c1, c2, actor, version=enr.version + 1)
        _finish(portal, enrollment_id, actor, reads=reads, loaded=enabled)
    finally:
        reads.settle()


@dataclass(frozen=True)
class _FinishReads:
    """The reads the finish step needs, started while EnableMFADevice and its check run.

    On real AWS each call is a round trip: two reads fewer one after the other on the page a
    new hire waits for. If the codes are refused, the answers are simply not used.
    """

    groups: Future[list[str]] | None
    policy: Future[dict[str, Any] | None] | None

    @classmethod
    def start(cls, portal: Portal, enr: Enrollment, inv: Invitation) -> _FinishReads:
        user = enr.user_name
        wants_groups = bool(inv.extra_groups) or inv.enforce_at is not None
        # The same conditions as _ensure_login_profile's own read of the policy.
        wants_policy = enr.temp_password_encrypted is None and (
            not inv.existing_user or inv.replace_login_profile
        )
        return cls(
            groups=in_background(lambda: portal.iam().groups_for_user(user))
            if wants_groups
            else None,
            policy=in_background(lambda: portal.iam().password_policy()) if wants_policy else None,
        )

    def settle(self) -> None:
        """Let no read outlive the request: unused ones are cancelled or waited for (their
        answers and errors dropped), so none runs on unobserved after the page is sent."""
        reads: list[Future[Any] | None] = [self.groups, self.policy]
        pending = [f for f in reads if f is not None and not f.cancel()]
        wait(pending)


def _set_status(
    portal: Portal,
    enrollment_id: str,
    version: int,
    *,
    session: Session | None = None,
    **values: Any,
) -> bool:
    """Update the enrollment only if nobody changed it since `version` was read."""
    if session is None:
        with portal.db.session() as own:
            return _set_status(portal, enrollment_id, version, session=own, **values)
    statement = (
        update(Enrollment)
        .where(Enrollment.id == enrollment_id, Enrollment.version == version)
        .values(version=version + 1, **values)
    )
    return changed_rows(session, statement) == 1


def _enable(
    portal: Portal, enr: Enrollment, code1: str, code2: str, actor: Actor, *, version: int
) -> tuple[Enrollment, Invitation]:
    """EnableMFADevice, confirmed with ListMFADevices; on failure the enrollment reopens.

    Returns the enrollment and its invitation as they are after the device is bound.
    """
    iam = portal.iam()
    user, serial = enr.user_name, enr.device_serial
    assert serial is not None
    try:
        iam.enable_mfa_device(user, serial, code1, code2)
    except InvalidAuthenticationCode as exc:
        _set_status(portal, enr.id, version, status="device_created")
        message = _("AWS did not accept these codes. Wait for a new code, then try again.")
        raise _failed_try(
            portal, enr, actor, message, "AWS: InvalidAuthenticationCode", exc.request_id
        ) from exc
    except AwsError as exc:
        # e.g. EntityAlreadyExists when a timed-out first attempt did go through: ask IAM.
        if _device_assigned(iam, user, serial) is not True:
            _set_status(portal, enr.id, version, status="device_created")
            _record(
                portal, actor, "iam.enable_mfa_device", user, outcome="failed",
                request_id=exc.request_id, detail=exc.message,
            )  # fmt: skip
            raise CodeRejected(exc.message, field="_form") from exc
        request_id = exc.request_id
    else:
        request_id = iam.last_request_id
        if _device_assigned(iam, user, serial) is False:
            _set_status(portal, enr.id, version, status="device_created")
            _record(
                portal, actor, "iam.enable_mfa_device", user, outcome="failed",
                request_id=request_id, detail="ListMFADevices does not show the device",
            )  # fmt: skip
            raise CodeRejected(
                _("AWS did not bind the device. Wait for a new code, then try again."),
                field="_form",
            )
    # What AWS did is recorded with the status it brings, in one transaction: the record
    # stands even when the conditional update finds the row changed (and changes nothing).
    with portal.db.session() as session:
        _record(
            portal, actor, "iam.enable_mfa_device", user, request_id=request_id, detail=serial,
            session=session,
        )  # fmt: skip
        _set_status(
            portal, enr.id, version, session=session, status="enabled",
            enabled_at=portal.clock(), seed_encrypted=None,
        )  # fmt: skip
        now_enr = session.get(Enrollment, enr.id)
        now_inv = session.get(Invitation, enr.invitation_id)
    if now_enr is None or now_inv is None:  # checked once the record has landed
        raise LinkUnusable()
    return now_enr, now_inv


def _after_other_request(portal: Portal, enrollment_id: str, actor: Actor) -> None:
    """A second submit of the same form: follow the first one instead of calling AWS again."""
    # The first request binds the device, then grants access: wait for both.
    enr = _wait_while(portal, enrollment_id, "enabling", "enabled")
    if enr.status == "enabling":
        # The other request died mid-call; IAM says whether the device got bound.
        assigned = enr.device_serial is not None and _device_assigned(
            portal.iam(), enr.user_name, enr.device_serial
        )
        if assigned:
            now = portal.clock()
            _set_status(
                portal, enr.id, enr.version, status="enabled", enabled_at=now, seed_encrypted=None
            )
        else:
            _set_status(portal, enr.id, enr.version, status="device_created")
        enr, _inv = _load(portal, enrollment_id)
    if enr.status in ("enabled", "done"):
        _finish(portal, enrollment_id, actor)
        return
    if enr.status == "locked":
        raise EnrollmentLocked()
    raise CodeRejected(_problem_message(CodeProblem.REUSED, None), field="_form")


# -- bind: groups, console password, invitation used -----------------------------------------
def finish_enrollment(portal: Portal, *, enrollment_id: str, actor: Actor) -> None:
    """Grant what waits for MFA; safe to run again after a failure midway."""
    enr, _inv = _load(portal, enrollment_id)
    _finish(portal, enrollment_id, _enrollee(actor, enr.user_name))


def _finish(
    portal: Portal,
    enrollment_id: str,
    actor: Actor,
    *,
    reads: _FinishReads | None = None,
    loaded: tuple[Enrollment, Invitation] | None = None,
) -> None:
    """`loaded`: the rows as the caller just read them, in its last transaction."""
    enr, inv = loaded or _load(portal, enrollment_id)
    if enr.status == "done":
        return
    if enr.status != "enabled":
        raise EnrollmentExpired()
    if inv.status == "revoked":
        raise LinkUnusable()
    iam = portal.iam()
    user = enr.user_name
    step = "iam.add_user_to_group"
    try:
        wanted = list(inv.extra_groups)
        if inv.enforce_at is not None:  # deadline mode: MFA is bound, so enforce it now
            wanted.insert(0, portal.settings.mfa_group)
        if not wanted:
            have: set[str] = set()
        elif reads is not None and reads.groups is not None:
            have = set(reads.groups.result())
        else:
            have = set(iam.groups_for_user(user))
        for group in wanted:
            if group not in have:
                iam.add_user_to_group(user, group)
                _record(portal, actor, step, user, request_id=iam.last_request_id, detail=group)
        step = "iam.create_login_profile"
        made_password = _ensure_login_profile(
            portal, iam, enr, inv, actor, policy=reads.policy if reads is not None else None
        )
        password_request_id = iam.last_request_id
    except AwsError as exc:
        _record(
            portal, actor, step, user, outcome="failed", request_id=exc.request_id,
            detail=exc.message,
        )  # fmt: skip
        raise FinishIncomplete(
            _(
                "Your MFA device is set up, but finishing your account did not work yet: "
                "{problem} Press Finish to try again."
            ).format(problem=exc.message)
        ) from exc
    now = portal.clock()
    with portal.db.session() as session:
        if made_password:  # what AWS did, recorded with the state it completes
            _record(
                portal, actor, "iam.create_login_profile", user, session=session,
                request_id=password_request_id,
                detail="temporary password, change required at first sign-in",
            )  # fmt: skip
        session.execute(
            update(Invitation).where(Invitation.id == inv.id).values(status="used", used_at=now)
        )
        session.execute(
            update(Enrollment)
            .where(Enrollment.id == enr.id, Enrollment.status == "enabled")
            .values(status="done", version=Enrollment.version + 1)
        )
        _record(
            portal, actor, "enroll.done", user,
            detail=f"groups={','.join(inv.extra_groups) or '-'}", session=session,
        )  # fmt: skip
    if looks_like_email(inv.invited_by):  # the API and the CLI have no address to tell
        _notify_inviter(portal, inv.id)


def _ensure_login_profile(
    portal: Portal,
    iam: IamGateway,
    enr: Enrollment,
    inv: Invitation,
    actor: Actor,
    *,
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
        sealed = _password_box(portal).encrypt(generate_password(rules), bound_to=_bound(enr.id))
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
        password = _password_box(portal).decrypt(stored, bound_to=_bound(enr.id))
    else:
        password = _password_box(portal).decrypt(
            enr.temp_password_encrypted, bound_to=_bound(enr.id)
        )
        if not inv.replace_login_profile and iam.login_profile(user):
            return False  # made by the earlier, interrupted run with this same password
    if inv.replace_login_profile:
        try:
            iam.delete_login_profile(user)
        except NoSuchEntity:
            pass
    try:
        iam.create_login_profile(user, password)
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
        if enr is None or enr.status != "done":
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
        _password_box(portal).decrypt(sealed, bound_to=_bound(enrollment_id)) if sealed else None
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


# -- housekeeping ----------------------------------------------------------------------------
def expire_enrollments(portal: Portal) -> int:
    """Wipe seeds (and unbound devices) of enrollments past their time, expire old links.

    Returns how many enrollments and invitations it marked expired.
    """
    now = portal.clock()
    with portal.db.session() as s:
        rows = list(
            s.scalars(
                select(Enrollment)
                .where(Enrollment.status.in_(("started", "device_created", "enabling")))
                .where(Enrollment.expires_at <= now)
            )
        )
    changed = 0
    iam = portal.iam() if rows else None
    for enr in rows:
        assert iam is not None
        if enr.status == "enabling" and enr.device_serial:
            if _device_assigned(iam, enr.user_name, enr.device_serial) is not False:
                continue  # bound (or IAM cannot say): the person's finish step takes it on
        if not _set_status(portal, enr.id, enr.version, status="expired", seed_encrypted=None):
            continue  # the person acted meanwhile
        if enr.device_serial:
            _delete_device(portal, iam, enr.device_serial, enr.user_name, SYSTEM_ACTOR)
        _record(portal, SYSTEM_ACTOR, "enroll.expired", enr.user_name)
        changed += 1
    with portal.db.session() as s:
        # A link whose device is already bound stays usable, so the finish step can complete.
        bound = exists().where(
            and_(
                Enrollment.invitation_id == Invitation.id,
                Enrollment.status.in_(("enabling", "enabled")),
            )
        )
        result = s.execute(
            update(Invitation)
            .where(Invitation.status == "pending", Invitation.expires_at <= now, ~bound)
            .values(status="expired")
            .execution_options(synchronize_session=False)
        )
        changed += int(getattr(result, "rowcount", 0) or 0)
    return changed

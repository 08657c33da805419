"""Inviting a new hire: validate, create the IAM user inside the MFA group, store the invitation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app import metrics
from app.aws.errors import (
    AwsError,
    AwsUnavailable,
    ConcurrentModification,
    EntityAlreadyExists,
    EntityTemporarilyUnmodifiable,
    NoSuchEntity,
    Throttled,
)
from app.aws.iam import EMAIL_TAG, INVITATION_TAG, MANAGED_TAG
from app.errors import Conflict, PortalError, ValidationError
from app.i18n import _
from app.security.tokens import hash_token, new_token
from app.services import audit
from app.services.portal import Actor, Portal
from app.store.models import Invitation, new_id
from app.store.states import LIVE_INVITATION, InvitationState

# IAM's own rule for user names; ASCII only, as IAM is.
USER_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
EMAIL = re.compile(r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+")
# An invitation in one of these states still holds its user name.
LIVE_STATES = LIVE_INVITATION
# AWS troubles that pass; after them IAM may or may not have done what was asked.
MAYBE_DONE = (AwsUnavailable, Throttled, EntityTemporarilyUnmodifiable, ConcurrentModification)


@dataclass(frozen=True)
class InviteResult:
    invitation_id: str
    user_name: str
    email: str
    link: str
    expires_at: datetime


class InviteIncomplete(PortalError):
    """The IAM user exists but is not yet in the MFA group; running the invite again finishes it."""

    status = 503
    code = "invite_incomplete"


def _check_user_name(user_name: str) -> str:
    user_name = user_name.strip()
    if not USER_NAME.fullmatch(user_name):
        raise ValidationError(
            _("Use 1 to 64 letters, digits or + = , . @ _ - for the IAM user name."),
            field="user_name",
        )
    return user_name


def _check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 320 or not EMAIL.fullmatch(email):
        raise ValidationError(_("Enter an email address like name@example.com."), field="email")
    return email


def _check_groups(portal: Portal, extra_groups: list[str]) -> list[str]:
    allowed = {g.lower(): g for g in portal.settings.assignable_groups}
    groups: list[str] = []
    for group in extra_groups:
        group = group.strip()
        if not group:
            continue
        if group.lower() not in allowed:
            choices = ", ".join(portal.settings.assignable_groups) or _("none are configured")
            raise ValidationError(
                _("Group {group} cannot be granted from the portal (allowed: {choices}).").format(
                    group=group, choices=choices
                ),
                field="groups",
            )
        if allowed[group.lower()] not in groups:
            groups.append(allowed[group.lower()])
    return groups


def validate_invite(
    portal: Portal, *, user_name: str, email: str, extra_groups: list[str]
) -> tuple[str, str, list[str]]:
    """Check the form values; each error names the field it belongs under."""
    return _check_user_name(user_name), _check_email(email), _check_groups(portal, extra_groups)


def invite_form_errors(
    portal: Portal, *, user_name: str, email: str, extra_groups: list[str]
) -> dict[str, str]:
    """Every field's problem at once, so a form shows them together (empty: all fine)."""
    errors: dict[str, str] = {}
    checks = (
        lambda: _check_user_name(user_name),
        lambda: _check_email(email),
        lambda: _check_groups(portal, extra_groups),
    )
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            errors[exc.field or "_form"] = exc.message
    return errors


def _live_invitation(session: Session, user_name: str) -> Invitation | None:
    return session.scalars(
        select(Invitation)
        .where(Invitation.user_name_key == user_name.lower())
        .where(Invitation.status.in_(LIVE_STATES))
        .order_by(Invitation.created_at.desc())
        .limit(1)
    ).first()


def _set_status(portal: Portal, invitation_id: str, status: str, error: str | None = None) -> None:
    with portal.db.session() as session:
        row = session.get(Invitation, invitation_id)
        if row is not None:
            row.status = status
            row.last_error = error
    if status == InvitationState.FAILED:
        metrics.invitation("failed")


@dataclass(frozen=True)
class _Made:
    """CreateUser's success, recorded with the next step's writes: one commit fewer between
    CreateUser and AddUserToGroup, a round trip each on real AWS."""

    request_id: str | None

    def record(self, portal: Portal, inv: Invitation, actor: Actor, session: Session) -> None:
        audit.record(
            portal, actor=actor, action="iam.create_user", target_user=inv.user_name,
            aws_request_id=self.request_id, session=session,
        )  # fmt: skip


def _create_user(portal: Portal, inv: Invitation, actor: Actor, *, resumed: bool) -> _Made | None:
    """CreateUser, tolerating a user that an earlier attempt of this same invitation made
    (None: this call made no user, nothing to record)."""
    iam = portal.iam()
    tags = {MANAGED_TAG: "true", INVITATION_TAG: inv.id, EMAIL_TAG: inv.email}
    try:
        iam.create_user(inv.user_name, tags=tags)
    except EntityAlreadyExists as exc:
        # IAM says the user exists. If an earlier attempt of this invitation may have made it
        # (botocore retried a call whose answer was lost, or the invite is being resumed), it
        # may be a moment old and reads may not show it yet: wait for them (the tags say whose
        # it is). Otherwise it is someone else's, and IAM's answer stands.
        ours = exc.retried or resumed
        try:
            existing: dict[str, str] | None = (iam.just_created() if ours else iam).user_tags(
                inv.user_name
            )
        except NoSuchEntity:
            existing = None
        if existing is not None and existing.get(INVITATION_TAG) == inv.id:
            return None  # a retry after a timeout, or a crash after CreateUser: it is ours
        _set_status(portal, inv.id, InvitationState.FAILED, "user name taken")
        audit.record(
            portal,
            actor=actor,
            action="iam.create_user",
            target_user=inv.user_name,
            outcome="failed",
            aws_request_id=iam.last_request_id,
            detail="an IAM user with this name already exists",
        )
        raise Conflict(
            _(
                "An IAM user named {name} already exists in this account (IAM user names "
                "ignore case). Choose another name, or send the existing user an enrollment link."
            ).format(name=inv.user_name)
        ) from None
    except AwsError as exc:
        # A lost answer or a timeout may hide a CreateUser that IAM carried out (the retries
        # then see EntityAlreadyExists): a passing trouble leaves the invitation "creating",
        # so the same invite, or housekeeping, resumes it and recognises the user by its tag.
        status = InvitationState.CREATING if isinstance(exc, MAYBE_DONE) else InvitationState.FAILED
        _set_status(portal, inv.id, status, exc.message)
        audit.record(
            portal,
            actor=actor,
            action="iam.create_user",
            target_user=inv.user_name,
            outcome="failed",
            aws_request_id=exc.request_id,
            detail=exc.message,
        )
        raise
    return _Made(iam.last_request_id)


def _join_mfa_group(
    portal: Portal, inv: Invitation, actor: Actor, made: _Made | None
) -> str | None:
    """AddUserToGroup(MFA); on failure undo CreateUser, or leave the invite for a retry.

    Returns the call's request id: the caller records the step with the token it issues.
    """
    # The user was created a moment ago: IAM may answer NoSuchEntity until it has replicated.
    iam = portal.iam().just_created()
    group = portal.settings.mfa_group
    try:
        iam.add_user_to_group(inv.user_name, group)
    except AwsError as exc:
        with portal.db.session() as session:
            if made is not None:
                made.record(portal, inv, actor, session)
            audit.record(
                portal, actor=actor, action="iam.add_user_to_group", target_user=inv.user_name,
                outcome="failed", aws_request_id=exc.request_id, detail=f"{group}: {exc.message}",
                session=session,
            )  # fmt: skip
        try:
            iam.delete_user(inv.user_name)
        except NoSuchEntity:
            pass
        except AwsError:
            # The user stays behind, in no group, with no password and no key: it can do
            # nothing. The invitation stays "creating" so a retry or housekeeping finishes it.
            with portal.db.session() as session:
                row = session.get(Invitation, inv.id)
                if row is not None:
                    row.last_error = exc.message
            raise InviteIncomplete(
                _(
                    "The IAM user {name} was created but could not be added to the "
                    "group {group} yet ({problem}). Run the same invite again to finish it."
                ).format(name=inv.user_name, group=group, problem=exc.message)
            ) from exc
        _set_status(portal, inv.id, InvitationState.FAILED, exc.message)
        audit.record(
            portal, actor=actor, action="iam.delete_user", target_user=inv.user_name,
            detail="rolled back an invite that could not join the MFA group",
        )  # fmt: skip
        raise PortalError(
            _(
                "Could not add {name} to the group {group}: {problem} "
                "Nothing was left behind in AWS; try the invite again."
            ).format(name=inv.user_name, group=group, problem=exc.message),
            status=exc.status,
            code=exc.code,
        ) from exc
    return iam.last_request_id


def _issue_token(
    portal: Portal,
    inv: Invitation,
    actor: Actor,
    *,
    made: _Made | None,
    joined_request_id: str | None,
) -> tuple[str, datetime]:
    """The link's token: the invitation turns pending with it, and the invite is recorded,
    with the IAM steps that came just before (one transaction)."""
    token = new_token()
    expires_at = portal.clock() + timedelta(hours=portal.settings.invite_ttl_hours)
    with portal.db.session() as session:
        if made is not None:
            made.record(portal, inv, actor, session)
        audit.record(
            portal, actor=actor, action="iam.add_user_to_group", target_user=inv.user_name,
            aws_request_id=joined_request_id, detail=portal.settings.mfa_group, session=session,
        )  # fmt: skip
        session.execute(
            update(Invitation).where(Invitation.id == inv.id).values(
                token_hash=hash_token(token), expires_at=expires_at, status=InvitationState.PENDING,
                last_error=None,
            )
        )  # fmt: skip
        audit.record(
            portal,
            actor=actor,
            action="invite",
            target_user=inv.user_name,
            detail=f"email={inv.email} groups={','.join(inv.extra_groups) or '-'}",
            session=session,
        )
    metrics.invitation("created")
    return token, expires_at


def finish_invitation(portal: Portal, *, invitation_id: str, actor: Actor) -> InviteResult:
    """Take an invitation in state `creating` through CreateUser and the MFA group."""
    with portal.db.session() as session:
        inv = session.get(Invitation, invitation_id)
        if inv is None or inv.status != InvitationState.CREATING:
            raise Conflict(_("This invitation is not waiting to be created."))
    return _finish(portal, inv, actor, resumed=True)


def _finish(portal: Portal, inv: Invitation, actor: Actor, *, resumed: bool) -> InviteResult:
    made = _create_user(portal, inv, actor, resumed=resumed)
    joined = _join_mfa_group(portal, inv, actor, made)
    token, expires_at = _issue_token(portal, inv, actor, made=made, joined_request_id=joined)
    return InviteResult(
        invitation_id=inv.id,
        user_name=inv.user_name,
        email=inv.email,
        link=portal.link(f"/enroll/{token}"),
        expires_at=expires_at,
    )


def invite_user(
    portal: Portal,
    *,
    user_name: str,
    email: str,
    extra_groups: list[str] | None = None,
    note: str | None = None,
    actor: Actor,
) -> InviteResult:
    """Create the IAM user inside the MFA group and a single-use enrollment link for them."""
    user_name, email, groups = validate_invite(
        portal, user_name=user_name, email=email, extra_groups=extra_groups or []
    )
    now = portal.clock()
    made = Invitation(
        id=new_id(),
        user_name=user_name,
        user_name_key=user_name.lower(),
        email=email,
        status=InvitationState.CREATING,
        extra_groups=groups,
        note=(note or "").strip()[:2000] or None,
        invited_by=actor.name,
        existing_user=False,
        replace_login_profile=False,
        failed_attempts=0,
        created_at=now,
        expires_at=now + timedelta(hours=portal.settings.invite_ttl_hours),
    )
    # The check and the new row in one transaction. Not a lock: two invites of one name at
    # the same instant can both pass the check, as before.
    with portal.db.session() as session:
        live = _live_invitation(session, user_name)
        if live is None:
            session.add(made)
    if live is not None and live.status == InvitationState.PENDING:
        raise Conflict(
            _(
                "{name} was already invited on {when} UTC and has not enrolled yet; "
                "no second user was created. Resend the link instead."
            ).format(name=live.user_name, when=f"{live.created_at:%Y-%m-%d %H:%M}"),
        )
    if live is not None:  # "creating": a half-done invite of the same name; finish that one
        audit.record(portal, actor=actor, action="invite.resume", target_user=live.user_name)
        return finish_invitation(portal, invitation_id=live.id, actor=actor)
    return _finish(portal, made, actor, resumed=False)


def list_invitations(portal: Portal) -> list[Invitation]:
    with portal.db.session() as session:
        return list(session.scalars(select(Invitation).order_by(Invitation.created_at.desc())))


def locked_count(portal: Portal) -> int:
    """Invitations locked after too many wrong codes and still waiting for a new link."""
    with portal.db.session() as session:
        count = session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.locked_at.is_not(None))
            .where(Invitation.status == InvitationState.PENDING)
        )
        return int(count or 0)

"""Bringing an existing IAM user under the portal ("adopting" it) and sending it a link.

Adopting is its own, explicit step: in the browser it asks for a fresh TOTP code, through the
API it needs the `users:adopt` scope. A user that holds more than the portal could grant is
refused unless the CLI on the server says `--allow-privileged`; a protected user never.
Adopting tags the user `iam-onboard:managed=true` with its contact email; from then on the
portal (and its IAM policy) may act on it (docs/architecture.md, "Bounded authority").
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from app.aws.errors import AwsError
from app.aws.iam import EMAIL_TAG, MANAGED_TAG
from app.errors import Conflict, ValidationError
from app.i18n import _
from app.services import audit
from app.services.invitations import LIVE_STATES, validate_invite
from app.services.lifecycle.links import (
    KeyInUse,
    LinkResult,
    issue_link,
    latest_invitation,
    link_expiry,
    link_result,
    new_existing_invitation,
)
from app.services.lifecycle.ownership import (
    Ownership,
    beyond_portal_grants,
    ownership,
    refuse_privileged,
    refuse_protected,
)
from app.services.lifecycle.steps import ensure_in_mfa_group
from app.services.portal import Actor, Portal
from app.store.models import Invitation
from app.store.states import InvitationState

KEY_IN_USE_DAYS = 30


def access_key_warnings(portal: Portal, *, user_name: str) -> list[KeyInUse]:
    """Access keys used in the last 30 days: programs using them will need MFA sessions."""
    iam = portal.iam()
    since = portal.clock() - timedelta(days=KEY_IN_USE_DAYS)
    keys = []
    for key in iam.access_keys(user_name):
        used = iam.access_key_last_used(key["AccessKeyId"])
        if used is not None and used >= since:
            keys.append(KeyInUse(access_key_id=key["AccessKeyId"], last_used=used))
    return keys


def _contact(owner: Ownership, email: str) -> str:
    """The email the link goes to: a managed user's is the one on record, changed only by the
    explicit change-email action; an adopted user's is the one the adopting admin gives."""
    email = email.strip()
    if not owner.managed or not owner.email:
        return email
    if email and email.lower() != owner.email.lower():
        raise ValidationError(
            _(
                "The email on record for {name} is {email}; the link goes there. To send it "
                "elsewhere, change the email on the user's page first."
            ).format(name=owner.user_name, email=owner.email),
            field="email",
        )
    return owner.email


def invite_existing_user(
    portal: Portal,
    *,
    user_name: str,
    email: str,
    deadline: datetime | None = None,
    replace_login_profile: bool = False,
    extra_groups: list[str] | None = None,
    allow_privileged: bool = False,
    actor: Actor,
) -> LinkResult:
    """Send an enrollment link to an existing IAM user, adopting it when the portal does not
    manage it yet; no user is created."""
    iam = portal.iam()
    owner = ownership(iam, user_name)  # NotFound for a user that does not exist
    refuse_protected(owner)
    name = owner.user_name
    user_name, email, groups = validate_invite(
        portal, user_name=name, email=_contact(owner, email), extra_groups=extra_groups or []
    )
    if deadline is not None and deadline <= portal.clock():
        raise ValidationError(_("Choose a deadline in the future."), field="deadline")
    latest = latest_invitation(portal, name)
    if latest is not None and latest.status in LIVE_STATES:
        raise Conflict(
            _("{name} already has a pending enrollment link; resend it instead.").format(name=name)
        )
    held = [] if owner.managed else beyond_portal_grants(portal, iam, name)
    if not allow_privileged:
        refuse_privileged(owner, held)
    keys = access_key_warnings(portal, user_name=name)
    warnings = [
        _(
            "Access key {key} was used on {when}: programs using it will need MFA session "
            "credentials (aws sts get-session-token) once {name} is in the MFA group."
        ).format(key=k.access_key_id, when=f"{k.last_used:%Y-%m-%d}", name=name)
        for k in keys
    ]
    devices = iam.mfa_devices(name)
    if devices:
        warnings.append(
            _("{name} already has {n} MFA device(s); enrolling adds one more.").format(
                name=name, n=len(devices)
            )
        )
    if not owner.managed:
        _adopt(portal, owner, email=email, held=held, actor=actor)
    inv_id = new_existing_invitation(
        portal,
        name=name,
        email=email,
        extra_groups=groups,
        replace_login_profile=replace_login_profile,
        enforce_at=deadline,
        actor=actor,
    )
    token = finish_existing(portal, invitation_id=inv_id, actor=actor)
    when = f"MFA group at {deadline:%Y-%m-%d %H:%M} UTC" if deadline else "MFA group now"
    audit.record(
        portal, actor=actor, action="send_link", target_user=name, detail=f"{email}; {when}"
    )
    result = link_result(portal, inv_id, token, reason="existing")
    return dataclasses.replace(result, keys_in_use=tuple(keys), warnings=tuple(warnings))


def _adopt(portal: Portal, owner: Ownership, *, email: str, held: list[str], actor: Actor) -> None:
    """Tag the user as the portal's, with its contact; audited (privileged rights named)."""
    iam = portal.iam()
    detail = f"contact {email}"
    if held:
        detail += "; privileged, allowed from the server's CLI: " + "; ".join(held)
    try:
        iam.tag_user(owner.user_name, {MANAGED_TAG: "true", EMAIL_TAG: email})
    except AwsError as exc:
        audit.record(
            portal,
            actor=actor,
            action="adopt",
            target_user=owner.user_name,
            outcome="failed",
            aws_request_id=exc.request_id,
            detail=f"{detail}: {exc.message}",
        )
        raise
    audit.record(
        portal,
        actor=actor,
        action="adopt",
        target_user=owner.user_name,
        aws_request_id=iam.last_request_id,
        detail=detail,
    )


def finish_existing(portal: Portal, *, invitation_id: str, actor: Actor) -> str:
    """Enforce-now joins the MFA group, then the link is issued; returns the raw token."""
    with portal.db.session() as s:
        inv = s.get(Invitation, invitation_id)
        assert inv is not None
    if inv.enforce_at is None:
        try:
            ensure_in_mfa_group(portal, iam=portal.iam(), user=inv.user_name, actor=actor)
        except AwsError as exc:
            with portal.db.session() as s:
                row = s.get(Invitation, invitation_id)
                assert row is not None
                row.status, row.last_error = InvitationState.FAILED, exc.message
            raise
    return issue_link(portal, invitation_id, expires_at=link_expiry(portal, inv.enforce_at))

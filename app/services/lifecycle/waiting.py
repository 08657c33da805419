"""A link that waits to be used: resend it (the old one dies at once), or revoke it, deleting
the never-enrolled user with it when the admin asks. Both act only on users the portal manages
(app.services.lifecycle.ownership)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

from app.aws.iam import INVITATION_TAG, IamGateway
from app.errors import Conflict, NotFound
from app.i18n import _
from app.services import audit
from app.services.invitations import finish_invitation
from app.services.lifecycle.links import (
    LinkResult,
    abandon_enrollments,
    issue_link,
    latest_invitation,
    link_expiry,
    link_result,
    revoke_live,
)
from app.services.lifecycle.offboarding import describe_resources
from app.services.lifecycle.ownership import require_managed
from app.services.lifecycle.steps import iam_step
from app.services.own_writes import own_writes
from app.services.portal import Actor, Portal
from app.services.statuses import state_label
from app.store.models import Invitation


@dataclass(frozen=True)
class RevokeResult:
    user_name: str
    user_deleted: bool


def _require_managed_if_present(portal: Portal, inv: Invitation) -> None:
    """A waiting link's user, when it exists in IAM, must be one the portal manages."""
    iam = portal.iam()
    # A user the portal created a moment ago may not show in IAM yet: wait for it.
    if own_writes(portal, inv.user_name).user:
        iam = iam.just_created()
    if iam.user_exists(inv.user_name):
        require_managed(iam, inv.user_name)


def resend(portal: Portal, *, user_name: str, actor: Actor) -> LinkResult:
    """A new link for a pending, expired or locked invitation; the old link dies at once."""
    inv = latest_invitation(portal, user_name)
    if inv is None:
        raise NotFound(_("{name} has no invitation to resend.").format(name=user_name))
    if inv.status != "creating":  # a half-made invite's user may not carry its tags yet
        _require_managed_if_present(portal, inv)
    if inv.status == "creating":  # an invite cut short: finishing it issues the link
        result = finish_invitation(portal, invitation_id=inv.id, actor=actor)
        return link_result(portal, inv.id, result.link.rsplit("/", 1)[1], reason="invite")
    if inv.status == "used":
        raise Conflict(
            _("{name} has already enrolled; use reset-mfa for a lost phone.").format(
                name=inv.user_name
            )
        )
    if inv.status not in ("pending", "expired"):
        raise Conflict(
            _("The invitation of {name} was {status}; send a new one instead.").format(
                name=inv.user_name, status=state_label(inv.status)
            )
        )
    abandon_enrollments(portal, invitation_ids=[inv.id], actor=actor)
    token = issue_link(portal, inv.id, expires_at=link_expiry(portal, inv.enforce_at))
    was = "locked" if inv.locked_at else inv.status
    audit.record(
        portal,
        actor=actor,
        action="resend",
        target_user=inv.user_name,
        detail=f"was {was}; the previous link no longer works",
    )
    fresh = link_result(portal, inv.id, token, reason="resend")
    return dataclasses.replace(fresh, was_locked=inv.locked_at is not None)


def revoke(
    portal: Portal, *, user_name: str, delete_user: bool = False, actor: Actor
) -> RevokeResult:
    """The link stops working; with delete_user, a never-enrolled portal user is deleted too."""
    inv = latest_invitation(portal, user_name)
    if inv is None:
        raise NotFound(_("{name} has no invitation to revoke.").format(name=user_name))
    name = inv.user_name
    if inv.status != "creating":
        _require_managed_if_present(portal, inv)
    if inv.status == "used":
        raise Conflict(
            _(
                "{name} has already enrolled, so there is no link to revoke. "
                "Use offboard to remove the user."
            ).format(name=name)
        )
    iam = portal.iam()
    # The user and its MFA group membership may be a moment old and not show in IAM yet.
    writes = own_writes(portal, name)
    look = writes.gateway(iam)
    if delete_user:
        # Before anything changes: a refusal changes nothing.
        _check_never_enrolled(iam, look, inv)
    revoke_live(portal, user_name=name, actor=actor, why="revoked by an admin")
    detail = "deleting the never-enrolled user" if delete_user else None
    audit.record(portal, actor=actor, action="revoke", target_user=name, detail=detail)
    if not delete_user:
        return RevokeResult(user_name=name, user_deleted=False)
    step = partial(iam_step, portal, actor=actor, iam=look, user=name)
    for group in writes.with_groups(iam.groups_for_user(name)) if look.user_exists(name) else []:
        step(
            action="iam.remove_user_from_group",
            detail=group,
            call=partial(look.remove_user_from_group, name, group),
        )
    deleted = step(
        action="iam.delete_user", detail="never enrolled", call=partial(look.delete_user, name)
    )
    return RevokeResult(user_name=name, user_deleted=deleted)


def _check_never_enrolled(iam: IamGateway, look: IamGateway, inv: Invitation) -> None:
    """`look` reads the user itself (waiting for it when the portal just created it)."""
    name = inv.user_name
    keep = _(" Revoke without deleting, or offboard the user.")
    if inv.existing_user:
        raise Conflict(
            _("{name} existed before this invitation, so the portal will not delete it.").format(
                name=name
            )
            + keep
        )
    if not look.user_exists(name):
        return  # already gone; revoking is all that is left to do
    if look.user_tags(name).get(INVITATION_TAG) != inv.id:
        raise Conflict(
            _("The IAM user {name} was not created by this invitation.").format(name=name) + keep
        )
    res = iam.user_resources(name)
    others = describe_resources(dataclasses.replace(res, groups=[]))
    if others:
        raise Conflict(
            _("{name} has more than the portal gave it ({items}).").format(
                name=name, items="; ".join(others)
            )
            + keep
        )

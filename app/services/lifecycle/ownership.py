"""Which IAM users the portal may act on: the ones it manages, never the protected ones.

The portal is a privileged identity in someone's AWS account, so it acts (resend, revoke,
reset, adopt, offboard, change a contact) only on users tagged `iam-onboard:managed=true`:
users it created, or existing users an admin adopted on purpose. A user tagged
`iam-onboard:protected=true` (break-glass and admin users) is never touched. The same rule
holds in IAM itself: the portal's own policy (`iam-onboard policy runtime`) conditions every
user-changing action on the managed tag and denies the protected one (docs/architecture.md,
"Bounded authority").
"""

from __future__ import annotations

from dataclasses import dataclass

from app.aws.iam import EMAIL_TAG, MANAGED_TAG, PROTECTED_TAG, IamGateway
from app.aws.ownership import is_true_tag
from app.errors import NotFound, PortalError
from app.i18n import _
from app.services.portal import Portal


class NotManaged(PortalError):
    """The user was not created or adopted by the portal."""

    status = 403
    code = "not_managed"


class ProtectedUser(PortalError):
    """The user carries the protected tag: the portal never acts on it."""

    status = 403
    code = "protected_user"


class Privileged(PortalError):
    """The user holds more than the portal could ever grant: adopting it would hand that out."""

    status = 403
    code = "privileged_user"


@dataclass(frozen=True)
class Ownership:
    """What the user's tags say about the portal's authority over it."""

    user_name: str  # IAM's spelling
    managed: bool
    protected: bool
    email: str  # the contact on record (the iam-onboard:email tag); "" when there is none


def ownership(iam: IamGateway, user_name: str) -> Ownership:
    """Read the user's tags; NotFound when there is no such IAM user."""
    user = iam.get_user(user_name.strip())
    if user is None:
        raise NotFound(_("There is no IAM user named {name}.").format(name=user_name))
    name = str(user["UserName"])
    tags = iam.user_tags(name)
    return Ownership(
        user_name=name,
        managed=is_true_tag(tags.get(MANAGED_TAG)),
        protected=is_true_tag(tags.get(PROTECTED_TAG)),
        email=tags.get(EMAIL_TAG, ""),
    )


def refuse_protected(owner: Ownership) -> None:
    if owner.protected:
        raise ProtectedUser(
            _(
                "{name} is tagged {tag}=true: the portal never changes it. An account "
                "administrator manages it in IAM."
            ).format(name=owner.user_name, tag=PROTECTED_TAG)
        )


def require_managed(iam: IamGateway, user_name: str) -> Ownership:
    """The user's ownership when the portal may act on it; a 403 error otherwise."""
    owner = ownership(iam, user_name)
    refuse_protected(owner)
    if not owner.managed:
        raise NotManaged(
            _(
                "The portal does not manage {name}: it did not create it and no admin has "
                "adopted it. Send it an enrollment link first to bring it under the portal."
            ).format(name=owner.user_name)
        )
    return owner


def beyond_portal_grants(portal: Portal, iam: IamGateway, user_name: str) -> list[str]:
    """What the user holds that the portal could never grant: groups other than the MFA group
    and the assignable ones, attached and inline user policies. Adopting such a user would let
    anyone with the portal's authority take over those rights."""
    grantable = {portal.settings.mfa_group.lower()}
    grantable |= {g.lower() for g in portal.settings.assignable_groups}
    held = [
        _("group {name}").format(name=g)
        for g in iam.groups_for_user(user_name)
        if g.lower() not in grantable
    ]
    held += [
        _("attached policy {arn}").format(arn=arn) for arn in iam.attached_user_policies(user_name)
    ]
    held += [_("inline policy {name}").format(name=p) for p in iam.inline_user_policies(user_name)]
    return held


def refuse_privileged(owner: Ownership, held: list[str]) -> None:
    if held:
        raise Privileged(
            _(
                "{name} holds more than the portal can grant ({items}), so it cannot be adopted "
                "from the browser or the API. An account administrator can remove those rights "
                "first, or run `iam-onboard send-link {name} --allow-privileged` on the server."
            ).format(name=owner.user_name, items="; ".join(held))
        )

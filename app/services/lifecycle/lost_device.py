"""A lost phone: the user's MFA devices and console password go, and a new link goes to the
email on record (never anywhere else: a reset does not change where links go)."""

from __future__ import annotations

from functools import partial

from app.errors import ValidationError
from app.i18n import _
from app.services import audit
from app.services.invitations import EMAIL
from app.services.lifecycle.links import (
    LinkResult,
    issue_link,
    link_result,
    new_existing_invitation,
    revoke_live,
)
from app.services.lifecycle.ownership import require_managed
from app.services.lifecycle.steps import delete_freed_devices, ensure_in_mfa_group, iam_step
from app.services.own_writes import own_writes
from app.services.portal import Actor, Portal


def reset_mfa(
    portal: Portal, *, user_name: str, actor: Actor, email: str | None = None
) -> LinkResult:
    """Lost phone: MFA devices and console password removed, a new link sent to the email on
    record. `email`, when given, must be that email: a reset never changes where links go."""
    iam = portal.iam()
    # What the portal did to this user a moment ago (an enrollment just done) may not show
    # in IAM yet: its records say what to wait for (app/services/own_writes.py).
    writes = own_writes(portal, user_name)
    patient = iam.just_created()
    owner = require_managed(patient if writes.user else iam, user_name)
    name = owner.user_name
    if not EMAIL.fullmatch(owner.email):
        raise ValidationError(
            _("No email address is on record for {name}; set one on its page first.").format(
                name=name
            ),
            field="email",
        )
    given = (email or "").strip()
    if given and given.lower() != owner.email.lower():
        raise ValidationError(
            _(
                "The email on record for {name} is {email}; the new link goes there. To send "
                "it elsewhere, change the email on the user's page first."
            ).format(name=name, email=owner.email),
            field="email",
        )
    retired = revoke_live(portal, user_name=name, actor=actor, why="replaced by reset-mfa")
    step = partial(iam_step, portal, actor=actor, user=name)
    just_bound = {d.serial for d in writes.devices}
    for device in writes.with_devices(iam.mfa_devices(name)):
        on = patient if device.serial in just_bound else iam
        step(
            iam=on,
            action="iam.deactivate_mfa_device",
            detail=device.serial,
            call=partial(on.deactivate_mfa_device, name, device.serial),
        )
        # Only the portal's own devices are deleted; the others (keys, hardware tokens, a device
        # the person made themselves) are freed and stay for the account's admin.
        if device.portal:
            step(
                iam=on,
                action="iam.delete_virtual_mfa_device",
                detail=device.serial,
                call=partial(on.delete_virtual_mfa_device, device.serial),
            )
    delete_freed_devices(portal, iam, name, actor)
    on = patient if writes.login_profile else iam
    step(
        iam=on,
        action="iam.delete_login_profile",
        detail="console password removed until MFA is set up again",
        call=partial(on.delete_login_profile, name),
    )
    ensure_in_mfa_group(portal, iam=iam, user=name, actor=actor)
    inv_id = new_existing_invitation(
        portal,
        name=name,
        email=owner.email,
        extra_groups=list(dict.fromkeys(g for r in retired for g in r.extra_groups)),
        replace_login_profile=True,  # the old one is gone; enrollment makes a new one
        enforce_at=None,
        actor=actor,
    )
    token = issue_link(portal, inv_id)
    audit.record(
        portal,
        actor=actor,
        action="reset_mfa",
        target_user=name,
        detail="devices and console password removed; new link issued",
    )
    return link_result(portal, inv_id, token, reason="reset")

"""The commands about IAM users: invite, list, resend, revoke, reset MFA, adopt, offboard."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.config import load_settings
from app.errors import PortalError
from app.i18n import _
from app.services.portal import CLI_ACTOR, build_portal

if TYPE_CHECKING:
    from app.services.lifecycle.links import LinkResult


def cmd_invite(args: argparse.Namespace) -> int:
    from app.services.invitations import invite_user

    result = invite_user(
        build_portal(load_settings()),
        user_name=args.user,
        email=args.email,
        extra_groups=args.group or [],
        note=args.note,
        actor=CLI_ACTOR,
    )
    print(
        _(
            "Invited {name} <{email}>: IAM user created in the MFA group. "
            "The link expires {when} UTC and is shown only now:"
        ).format(
            name=result.user_name, email=result.email, when=f"{result.expires_at:%Y-%m-%d %H:%M}"
        )
    )
    print(result.link)
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def cmd_status(args: argparse.Namespace) -> int:
    from app.services.directory import export_rows, get_snapshot, refresh_directory
    from app.services.statuses import status_label

    portal = build_portal(load_settings())
    if not args.cached:
        refresh_directory(portal, actor=CLI_ACTOR)
    rows = export_rows(portal)
    if args.json:
        data = [
            {
                "user_name": r.user_name,
                "email": r.email,
                "status": r.status,
                "invited_by": r.invited_by,
                "created_at": _iso(r.invited_at),
                "expires_at": _iso(r.invite_expires_at),
                "enrolled_at": _iso(r.enrolled_at),
                "virtual_mfa_devices": r.mfa_devices,
                "mfa_of_other_kind": r.other_mfa,
                "in_mfa_group": r.in_mfa_group,
                "last_console_sign_in": _iso(r.last_console_sign_in),
            }
            for r in rows
        ]
        print(json.dumps(data, indent=2))
        return 0
    snapshot = get_snapshot(portal)
    if snapshot.refreshed_at is None:
        print(_("IAM not read yet: run `iam-onboard status` without --cached."))
    if not rows:
        print(_("No IAM users yet. Invite someone with: iam-onboard invite USER --email E"))
        return 0
    for r in rows:
        print(f"{r.user_name:<32} {status_label(r.status):<18} {r.email or '-'}")
    if snapshot.refreshed_at is not None:
        print(
            _("{n} user(s); IAM read {when} UTC.").format(
                n=len(rows), when=f"{snapshot.refreshed_at:%Y-%m-%d %H:%M}"
            )
        )
    return 0


def _confirm(question: str, *, expected: str | None, flag: str) -> None:
    """Ask on a terminal (`expected` None means yes/no); without one, name the flag instead."""
    if not sys.stdin.isatty():
        raise PortalError(
            _("Refusing without confirmation: pass {flag} (no terminal to ask on).").format(
                flag=flag
            )
        )
    answer = input(question).strip()
    ok = answer.lower() in ("y", "yes") if expected is None else answer == expected
    if not ok:
        raise PortalError(_("Cancelled: nothing was changed."))


def _print_link(result: LinkResult, headline: str) -> None:
    for warning in result.warnings:
        print(_("warning: {warning}").format(warning=warning))
    when = f"{result.expires_at:%Y-%m-%d %H:%M}"
    if result.mailed:
        text = _(
            "{headline} Mailed to {email}. The link expires {when} UTC, works once and is "
            "shown only now:"
        )
    else:
        text = _("{headline} The link expires {when} UTC, works once and is shown only now:")
    print(text.format(headline=headline, email=result.email, when=when))
    print(result.link)


def cmd_resend(args: argparse.Namespace) -> int:
    from app.services.lifecycle.waiting import resend

    result = resend(build_portal(load_settings()), user_name=args.user, actor=CLI_ACTOR)
    _print_link(
        result,
        _("New link for {name}; the previous link no longer works.").format(name=result.user_name),
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from app.services.lifecycle.waiting import revoke

    result = revoke(
        build_portal(load_settings()),
        user_name=args.user,
        delete_user=args.delete_user,
        actor=CLI_ACTOR,
    )
    print(_("The enrollment link of {name} no longer works.").format(name=result.user_name))
    if result.user_deleted:
        print(
            _("The IAM user {name} was deleted (it had never enrolled).").format(
                name=result.user_name
            )
        )
    return 0


def cmd_reset_mfa(args: argparse.Namespace) -> int:
    from app.services.lifecycle.lost_device import reset_mfa

    if not args.yes:
        _confirm(
            _(
                "Reset MFA of {name}? Its MFA devices and console password are removed; it "
                "cannot sign in until it enrolls again with the new link."
            ).format(name=args.user)
            + " [y/N] ",
            expected=None,
            flag="--yes",
        )
    result = reset_mfa(
        build_portal(load_settings()), user_name=args.user, email=args.email, actor=CLI_ACTOR
    )
    print(_("MFA devices and console password of {name} removed.").format(name=result.user_name))
    _print_link(result, _("New enrollment link (the next enrollment gets a new secret)."))
    return 0


def cmd_offboard(args: argparse.Namespace) -> int:
    from app.services.lifecycle.offboarding import describe_resources, offboard, offboard_plan

    portal = build_portal(load_settings())
    items = describe_resources(offboard_plan(portal, user_name=args.user))
    print(
        _("Attached to {name} ({n} item(s)), removed in this order:").format(
            name=args.user, n=len(items)
        )
    )
    for item in items:
        print(f"  {item}")
    print("  " + _("then the IAM user {name} itself").format(name=args.user))
    if args.dry_run:
        print(_("Dry run: nothing was changed."))
        return 0
    if not args.yes:
        _confirm(
            _("Type the user name ({name}) to offboard it: ").format(name=args.user),
            expected=args.user,
            flag="--yes",
        )
    report = offboard(portal, user_name=args.user, actor=CLI_ACTOR)
    print(
        _("Offboarded {name}: {n} item(s) removed, user deleted.").format(
            name=report.user_name, n=len(report.removed)
        )
    )
    return 0


def _deadline(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PortalError(
            _("{option} {value}: use YYYY-MM-DD (UTC).").format(option="--deadline", value=value)
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_send_link(args: argparse.Namespace) -> int:
    from app.services.lifecycle.adoption import invite_existing_user

    deadline = _deadline(args.deadline)
    result = invite_existing_user(
        build_portal(load_settings()),
        user_name=args.user,
        email=args.email,
        deadline=deadline,
        replace_login_profile=args.replace_login_profile,
        extra_groups=args.group or [],
        allow_privileged=args.allow_privileged,
        actor=CLI_ACTOR,
    )
    if deadline:
        headline = _(
            "Enrollment link for the existing IAM user {name}, who joins the MFA group when it "
            "enrolls or at {when} UTC, whichever comes first."
        ).format(name=result.user_name, when=f"{deadline:%Y-%m-%d %H:%M}")
    else:
        headline = _(
            "Enrollment link for the existing IAM user {name}, who is in the MFA group now."
        ).format(name=result.user_name)
    _print_link(result, headline)
    return 0


def cmd_set_email(args: argparse.Namespace) -> int:
    from app.services.lifecycle.contacts import change_email

    name = change_email(
        build_portal(load_settings()), user_name=args.user, email=args.email, actor=CLI_ACTOR
    )
    print(_("Links for {name} now go to {email}.").format(name=name, email=args.email.strip()))
    return 0


def cmd_housekeeping(args: argparse.Namespace) -> int:
    from app.services.housekeeping import new_holder, run_housekeeping

    report = run_housekeeping(build_portal(load_settings()), holder=new_holder())
    for line in report.lines():
        print(line)
    if report.problems:
        failed = _("{n} chore(s) failed; see above.").format(n=len(report.problems))
        print(f"iam-onboard: {failed}", file=sys.stderr)
        return 1
    return 0

"""The command line: iam-onboard demo | serve | bootstrap | doctor | invite | status."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.config import Settings, load_settings
from app.errors import PortalError
from app.services.portal import CLI_ACTOR, Portal, build_portal

if TYPE_CHECKING:
    from app.services.lifecycle_steps import LinkResult

log = logging.getLogger("iam_onboard")


def _portal(settings: Settings | None = None) -> Portal:
    return build_portal(settings or load_settings())


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # moto's werkzeug server and botocore would otherwise log every request they see.
    for noisy in ("werkzeug", "botocore", "urllib3", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _run_server(portal: Portal, *, host: str, port: int) -> None:
    import uvicorn

    from app.main import create_app

    # access_log is off: the app logs each request itself, with tokens taken out of paths.
    uvicorn.run(create_app(portal), host=host, port=port, access_log=False, log_level="warning")


# -- commands ---------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from app.sandbox import start_sandbox
    from app.services.bootstrap import bootstrap

    host = "127.0.0.1"
    if not _port_free(host, args.port):
        raise PortalError(f"Port {args.port} is already in use; choose another with --port.")
    if args.iam_port and not _port_free(host, args.iam_port):
        raise PortalError(
            f"Port {args.iam_port} is already in use; choose another with --iam-port."
        )
    tmpdir = None
    database_url = args.database_url
    if not database_url:
        tmpdir = tempfile.mkdtemp(prefix="iam-onboard-demo-")
        database_url = f"sqlite:///{tmpdir}/demo.db"
    sandbox = start_sandbox(host=host, port=args.iam_port or 0)
    try:
        settings = load_settings(
            sandbox=True, database_url=database_url, base_url=f"http://{host}:{args.port}"
        )
        portal = build_portal(settings, endpoint=sandbox.url)
        bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
        print("iam-onboard demo: sandbox AWS and a throwaway database; Ctrl-C stops everything.")
        print(f"Portal: {settings.base_url}")
        print("Sandbox IAM endpoint (for AWS_ENDPOINT_URL_IAM and the AWS CLI):")
        print(sandbox.url)
        _print_demo_admin(portal, args.admin_email)
        print(f"Database: {database_url}")
        sys.stdout.flush()
        _run_server(portal, host=host, port=args.port)
    finally:
        sandbox.stop()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


def _print_demo_admin(portal: Portal, email: str) -> None:
    from app.services.admins import AdminAlreadySetUp, create_admin

    try:
        setup = create_admin(portal, email=email, actor=CLI_ACTOR)
    except AdminAlreadySetUp:
        print(f"Admin {email} exists and has finished setup: sign in at {portal.link('/admin')}")
        return
    print(f"Admin: {setup.email} (choose a password and a code app within 24 hours)")
    print("Admin setup link (shown once):")
    print(setup.link)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.require_real_secret()
    portal = _portal(settings)
    log.info("serving on %s:%s, links built from %s", args.host, args.port, settings.base_url)
    _run_server(portal, host=args.host, port=args.port)
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from app.services.bootstrap import bootstrap

    steps = bootstrap(_portal(), dry_run=args.dry_run, actor=CLI_ACTOR)
    for step in steps:
        print(("* " if step.changed else "  ") + step.text)
    changed = sum(step.changed for step in steps)
    if args.dry_run:
        print(f"Dry run: {changed} change(s) would be made; nothing was changed.")
    elif changed:
        print(f"Done: {changed} change(s) made.")
    else:
        print("Nothing to change: the MFA policy and group are in place.")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.services.doctor import run_checks

    settings = load_settings()
    portal = build_portal(settings, migrate=False)
    checks = run_checks(portal)
    for check in checks:
        print(("ok       " if check.ok else "PROBLEM  ") + check.text)
    problems = sum(not c.ok for c in checks)
    print(f"{problems} problem(s) found." if problems else "All checks passed.")
    return 1 if problems else 0


def cmd_invite(args: argparse.Namespace) -> int:
    from app.services.invitations import invite_user

    result = invite_user(
        _portal(),
        user_name=args.user,
        email=args.email,
        extra_groups=args.group or [],
        note=args.note,
        actor=CLI_ACTOR,
    )
    print(
        f"Invited {result.user_name} <{result.email}>: IAM user created in the MFA group. "
        f"The link expires {result.expires_at:%Y-%m-%d %H:%M} UTC and is shown only now:"
    )
    print(result.link)
    return 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    from app.services.admins import create_admin

    setup = create_admin(_portal(), email=args.email, actor=CLI_ACTOR)
    print(
        f"Admin {setup.email}: open this link before {setup.expires_at:%Y-%m-%d %H:%M} UTC to "
        "choose a password and set up a code app. It works once and is shown only now:"
    )
    print(setup.link)
    return 0


def cmd_create_api_token(args: argparse.Namespace) -> int:
    from app.services.api_tokens import create_api_token

    token = create_api_token(_portal(), name=args.name, actor=CLI_ACTOR)
    print(
        f"API token {args.name.strip()} created. Send it as `Authorization: Bearer <token>`; "
        "it is stored hashed and shown only now:"
    )
    print(token)
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def cmd_status(args: argparse.Namespace) -> int:
    from app.services.directory import export_rows, get_snapshot, refresh_directory

    portal = _portal()
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
        print("IAM not read yet: run `iam-onboard status` without --cached.")
    if not rows:
        print("No IAM users yet. Invite someone with: iam-onboard invite USER --email E")
        return 0
    for r in rows:
        print(f"{r.user_name:<32} {r.status:<18} {r.email or '-'}")
    if snapshot.refreshed_at is not None:
        print(f"{len(rows)} user(s); IAM read {snapshot.refreshed_at:%Y-%m-%d %H:%M} UTC.")
    return 0


# -- lifecycle -----------------------------------------------------------------------------------
def _confirm(question: str, *, expected: str | None, flag: str) -> None:
    """Ask on a terminal (`expected` None means yes/no); without one, name the flag instead."""
    if not sys.stdin.isatty():
        raise PortalError(f"Refusing without confirmation: pass {flag} (no terminal to ask on).")
    answer = input(question).strip()
    ok = answer.lower() in ("y", "yes") if expected is None else answer == expected
    if not ok:
        raise PortalError("Cancelled: nothing was changed.")


def _print_link(result: LinkResult, headline: str) -> None:
    for warning in result.warnings:
        print(f"warning: {warning}")
    mailed = f" Mailed to {result.email}." if result.mailed else ""
    print(
        f"{headline}{mailed} The link expires {result.expires_at:%Y-%m-%d %H:%M} UTC, "
        "works once and is shown only now:"
    )
    print(result.link)


def cmd_resend(args: argparse.Namespace) -> int:
    from app.services.lifecycle import resend

    result = resend(_portal(), user_name=args.user, actor=CLI_ACTOR)
    _print_link(result, f"New link for {result.user_name}; the previous link no longer works.")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from app.services.lifecycle import revoke

    result = revoke(_portal(), user_name=args.user, delete_user=args.delete_user, actor=CLI_ACTOR)
    print(f"The enrollment link of {result.user_name} no longer works.")
    if result.user_deleted:
        print(f"The IAM user {result.user_name} was deleted (it had never enrolled).")
    return 0


def cmd_reset_mfa(args: argparse.Namespace) -> int:
    from app.services.lifecycle import reset_mfa

    if not args.yes:
        _confirm(
            f"Reset MFA of {args.user}? Its MFA devices and console password are removed; it "
            "cannot sign in until it enrolls again with the new link. [y/N] ",
            expected=None,
            flag="--yes",
        )
    result = reset_mfa(_portal(), user_name=args.user, email=args.email, actor=CLI_ACTOR)
    print(f"MFA devices and console password of {result.user_name} removed.")
    _print_link(result, "New enrollment link (the next enrollment gets a new secret).")
    return 0


def cmd_offboard(args: argparse.Namespace) -> int:
    from app.services.lifecycle import describe_resources, offboard, offboard_plan

    portal = _portal()
    items = describe_resources(offboard_plan(portal, user_name=args.user))
    print(f"Attached to {args.user} ({len(items)} item(s)), removed in this order:")
    for item in items:
        print(f"  {item}")
    print(f"  then the IAM user {args.user} itself")
    if args.dry_run:
        print("Dry run: nothing was changed.")
        return 0
    if not args.yes:
        _confirm(
            f"Type the user name ({args.user}) to offboard it: ", expected=args.user, flag="--yes"
        )
    report = offboard(portal, user_name=args.user, actor=CLI_ACTOR)
    print(f"Offboarded {report.user_name}: {len(report.removed)} item(s) removed, user deleted.")
    return 0


def _deadline(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PortalError(f"--deadline {value}: use YYYY-MM-DD (UTC).") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_send_link(args: argparse.Namespace) -> int:
    from app.services.lifecycle import invite_existing_user

    deadline = _deadline(args.deadline)
    result = invite_existing_user(
        _portal(),
        user_name=args.user,
        email=args.email,
        deadline=deadline,
        replace_login_profile=args.replace_login_profile,
        extra_groups=args.group or [],
        actor=CLI_ACTOR,
    )
    when = (
        f"joins the MFA group when it enrolls or at {deadline:%Y-%m-%d %H:%M} UTC, "
        "whichever comes first"
        if deadline
        else "is in the MFA group now"
    )
    _print_link(
        result, f"Enrollment link for the existing IAM user {result.user_name}, who {when}."
    )
    return 0


def cmd_housekeeping(args: argparse.Namespace) -> int:
    from app.services.housekeeping import new_holder, run_housekeeping

    report = run_housekeeping(_portal(), holder=new_holder())
    for line in report.lines():
        print(line)
    if report.problems:
        print(f"iam-onboard: {len(report.problems)} chore(s) failed; see above.", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iam-onboard",
        description="Self-service onboarding of AWS IAM users with MFA from the first minute.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the portal on the sandbox AWS and a throwaway database")
    p.add_argument("--port", type=int, default=8000, help="portal port (default 8000)")
    p.add_argument("--iam-port", type=int, default=0, help="sandbox IAM port (default: free)")
    p.add_argument("--database-url", help="keep the database here instead of a throwaway file")
    p.add_argument(
        "--admin-email", default="admin@example.com", help="the demo admin's email address"
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="run the portal against real AWS (production)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bootstrap", help="create or update the MFA policy and group")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser("doctor", help="check AWS, the MFA policy, the database and SMTP")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("invite", help="create an IAM user in the MFA group and print its link")
    p.add_argument("user", metavar="USER", help="IAM user name")
    p.add_argument("--email", required=True, help="the new hire's email address")
    p.add_argument("--group", action="append", help="extra group granted after MFA (repeatable)")
    p.add_argument("--note", help="a note shown to the new hire")
    p.set_defaults(func=cmd_invite)

    p = sub.add_parser("create-admin", help="create an admin and print a one-time setup link")
    p.add_argument("email", metavar="EMAIL", help="the admin's email address")
    p.set_defaults(func=cmd_create_admin)

    p = sub.add_parser("create-api-token", help="create an API token and print it once")
    p.add_argument("name", metavar="NAME", help="who uses it, e.g. hr-system (shown in the audit)")
    p.set_defaults(func=cmd_create_api_token)

    p = sub.add_parser("status", help="read IAM and list every user with its status")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--cached", action="store_true", help="list the last read without calling AWS")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("resend", help="a new enrollment link; the old one stops working")
    p.add_argument("user", metavar="USER", help="IAM user name")
    p.set_defaults(func=cmd_resend)

    p = sub.add_parser("revoke", help="make a user's enrollment link stop working")
    p.add_argument("user", metavar="USER", help="IAM user name")
    p.add_argument(
        "--delete-user", action="store_true", help="also delete the user if it never enrolled"
    )
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("reset-mfa", help="lost phone: remove MFA and password, new link")
    p.add_argument("user", metavar="USER", help="IAM user name")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--email", help="where the link goes, if the portal knows no address")
    p.set_defaults(func=cmd_reset_mfa)

    p = sub.add_parser("offboard", help="remove everything attached to a user, then the user")
    p.add_argument("user", metavar="USER", help="IAM user name")
    p.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask to type the user name")
    p.set_defaults(func=cmd_offboard)

    p = sub.add_parser("send-link", help="send an enrollment link to an existing IAM user")
    p.add_argument("user", metavar="USER", help="IAM user name")
    p.add_argument("--email", required=True, help="the person's email address")
    p.add_argument("--deadline", help="YYYY-MM-DD (UTC): MFA group then, not now")
    p.add_argument(
        "--replace-login-profile", action="store_true", help="give a new console password"
    )
    p.add_argument("--group", action="append", help="extra group granted after MFA (repeatable)")
    p.set_defaults(func=cmd_send_link)

    p = sub.add_parser("housekeeping", help="run the periodic chores once")
    p.set_defaults(func=cmd_housekeeping)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings_level = load_settings().log_level
    except PortalError as exc:
        print(f"iam-onboard: {exc.message}", file=sys.stderr)
        return 2
    _setup_logging(settings_level)
    try:
        return int(args.func(args))
    except PortalError as exc:
        print(f"iam-onboard: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

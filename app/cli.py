"""The command line: iam-onboard demo | serve | bootstrap | doctor | policy | invite | status."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app import i18n
from app.config import Settings, load_settings
from app.errors import PortalError
from app.i18n import _
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
    from app.server import serve

    serve(portal, host=host, port=port)


# -- commands ---------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from app.sandbox import start_sandbox
    from app.services.bootstrap import bootstrap

    host = "127.0.0.1"
    if not _port_free(host, args.port):
        raise PortalError(
            _("Port {port} is already in use; choose another with {option}.").format(
                port=args.port, option="--port"
            )
        )
    if args.iam_port and not _port_free(host, args.iam_port):
        raise PortalError(
            _("Port {port} is already in use; choose another with {option}.").format(
                port=args.iam_port, option="--iam-port"
            )
        )
    tmpdir = None
    database_url = args.database_url
    if not database_url:
        tmpdir = tempfile.mkdtemp(prefix="iam-onboard-demo-")
        database_url = f"sqlite:///{tmpdir}/demo.db"
    # None: IAM_ONBOARD_SANDBOX_ENFORCE_POLICIES=1 decides (start_sandbox reads it).
    enforce = True if args.iam_enforce_policies else None
    sandbox = start_sandbox(host=host, port=args.iam_port or 0, enforce_policies=enforce)
    try:
        settings = load_settings(
            sandbox=True, database_url=database_url, base_url=f"http://{host}:{args.port}"
        )
        portal = build_portal(settings, endpoint=sandbox.url)
        portal.clock = sandbox.now  # the real time unless a test moves the sandbox's clock
        if sandbox.enforcing:
            from app import demo_identities

            bootstrap(demo_identities.as_admin(portal, sandbox), dry_run=False, actor=CLI_ACTOR)
            portal = demo_identities.as_runtime_identity(portal, sandbox)
        else:
            bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
        print(_("iam-onboard demo: sandbox AWS and a throwaway database; Ctrl-C stops everything."))
        print(_("Portal: {url}").format(url=settings.base_url))
        print(_("Sandbox IAM endpoint (for AWS_ENDPOINT_URL_IAM and the AWS CLI):"))
        print(sandbox.url)
        if sandbox.enforcing:
            _print_enforcement(sandbox)
        _print_demo_admin(portal, args.admin_email)
        print(_("Database: {url}").format(url=database_url))
        sys.stdout.flush()
        _run_server(portal, host=host, port=args.port)
    finally:
        sandbox.stop()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


def _print_enforcement(sandbox: Any) -> None:
    from app.demo_identities import ADMIN_KEYS, PORTAL_USER

    print(_("The sandbox enforces IAM policies; its administrator's access key (sandbox only):"))
    print(f"AWS_ACCESS_KEY_ID={ADMIN_KEYS['aws_access_key_id']}")
    print(f"AWS_SECRET_ACCESS_KEY={ADMIN_KEYS['aws_secret_access_key']}")
    print(_("The portal runs as IAM user {user} with its runtime policy.").format(user=PORTAL_USER))


def _print_demo_admin(portal: Portal, email: str) -> None:
    from app.services.admins import AdminAlreadySetUp, create_admin

    try:
        setup = create_admin(portal, email=email, actor=CLI_ACTOR)
    except AdminAlreadySetUp:
        print(
            _("Admin {email} exists and has finished setup: sign in at {url}").format(
                email=email, url=portal.link("/admin")
            )
        )
        return
    print(
        _("Admin: {email} (choose a password and a code app within 24 hours)").format(
            email=setup.email
        )
    )
    print(_("Admin setup link (shown once):"))
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
        print(_("Dry run: {n} change(s) would be made; nothing was changed.").format(n=changed))
    elif changed:
        print(_("Done: {n} change(s) made.").format(n=changed))
    else:
        print(_("Nothing to change: the MFA policy and group are in place."))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.services.doctor import run_checks

    settings = load_settings()
    portal = build_portal(settings, migrate=False)
    checks = run_checks(portal)
    for check in checks:
        print(("ok       " if check.ok else "PROBLEM  ") + check.text)
    problems = sum(not c.ok for c in checks)
    print(_("{n} problem(s) found.").format(n=problems) if problems else _("All checks passed."))
    return 1 if problems else 0


def cmd_policy(args: argparse.Namespace) -> int:
    from app.aws.policy_documents import cloudformation_resource, policy_for

    settings = load_settings()
    if args.format == "cloudformation":
        document = cloudformation_resource(args.kind, settings)
    else:
        document = policy_for(args.kind, settings)
    print(json.dumps(document, indent=2))
    return 0


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
        _(
            "Invited {name} <{email}>: IAM user created in the MFA group. "
            "The link expires {when} UTC and is shown only now:"
        ).format(
            name=result.user_name, email=result.email, when=f"{result.expires_at:%Y-%m-%d %H:%M}"
        )
    )
    print(result.link)
    return 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    from app.services.admins import create_admin

    setup = create_admin(_portal(), email=args.email, actor=CLI_ACTOR)
    print(
        _(
            "Admin {email}: open this link before {when} UTC to choose a password and set up "
            "a code app. It works once and is shown only now:"
        ).format(email=setup.email, when=f"{setup.expires_at:%Y-%m-%d %H:%M}")
    )
    print(setup.link)
    return 0


def cmd_unlock_admin(args: argparse.Namespace) -> int:
    from app.services.admins import unlock_admin

    info = unlock_admin(_portal(), email=args.email, actor=CLI_ACTOR)
    print(
        _("Admin {email} can sign in again; the failed attempts were forgotten.").format(
            email=info.email
        )
    )
    return 0


def cmd_create_api_token(args: argparse.Namespace) -> int:
    from app.services.api_tokens import DEFAULT_SCOPES, check_scopes, create_api_token

    scopes = check_scopes(args.scope or DEFAULT_SCOPES)
    token = create_api_token(_portal(), name=args.name, scopes=scopes, actor=CLI_ACTOR)
    print(
        _(
            "API token {name} created with the scopes {scopes}. Send it as {header}; it is "
            "stored hashed and shown only now:"
        ).format(
            name=args.name.strip(),
            scopes=", ".join(scopes),
            header="`Authorization: Bearer <token>`",
        )
    )
    print(token)
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def cmd_status(args: argparse.Namespace) -> int:
    from app.services.directory import export_rows, get_snapshot, refresh_directory
    from app.services.statuses import status_label

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


# -- lifecycle -----------------------------------------------------------------------------------
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
    from app.services.lifecycle import resend

    result = resend(_portal(), user_name=args.user, actor=CLI_ACTOR)
    _print_link(
        result,
        _("New link for {name}; the previous link no longer works.").format(name=result.user_name),
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from app.services.lifecycle import revoke

    result = revoke(_portal(), user_name=args.user, delete_user=args.delete_user, actor=CLI_ACTOR)
    print(_("The enrollment link of {name} no longer works.").format(name=result.user_name))
    if result.user_deleted:
        print(
            _("The IAM user {name} was deleted (it had never enrolled).").format(
                name=result.user_name
            )
        )
    return 0


def cmd_reset_mfa(args: argparse.Namespace) -> int:
    from app.services.lifecycle import reset_mfa

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
    result = reset_mfa(_portal(), user_name=args.user, email=args.email, actor=CLI_ACTOR)
    print(_("MFA devices and console password of {name} removed.").format(name=result.user_name))
    _print_link(result, _("New enrollment link (the next enrollment gets a new secret)."))
    return 0


def cmd_offboard(args: argparse.Namespace) -> int:
    from app.services.lifecycle import describe_resources, offboard, offboard_plan

    portal = _portal()
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
    from app.services.adoption import invite_existing_user

    deadline = _deadline(args.deadline)
    result = invite_existing_user(
        _portal(),
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
    from app.services.contacts import change_email

    name = change_email(_portal(), user_name=args.user, email=args.email, actor=CLI_ACTOR)
    print(_("Links for {name} now go to {email}.").format(name=name, email=args.email.strip()))
    return 0


def cmd_housekeeping(args: argparse.Namespace) -> int:
    from app.services.housekeeping import new_holder, run_housekeeping

    report = run_housekeeping(_portal(), holder=new_holder())
    for line in report.lines():
        print(line)
    if report.problems:
        failed = _("{n} chore(s) failed; see above.").format(n=len(report.problems))
        print(f"iam-onboard: {failed}", file=sys.stderr)
        return 1
    return 0


class _HelpFormatter(argparse.HelpFormatter):
    def add_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """argparse with its own headings in the current language (subcommands inherit it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self._positionals.title = _("positional arguments")
        self._optionals.title = _("options")
        for action in self._actions:
            if "--help" in action.option_strings:
                action.help = _("show this help message and exit")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="iam-onboard",
        description=_("Self-service onboarding of AWS IAM users with MFA from the first minute."),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help=_("run the portal on the sandbox AWS and a throwaway database"))
    p.add_argument("--port", type=int, default=8000, help=_("portal port (default 8000)"))
    p.add_argument("--iam-port", type=int, default=0, help=_("sandbox IAM port (default: free)"))
    p.add_argument("--database-url", help=_("keep the database here instead of a throwaway file"))
    p.add_argument(
        "--admin-email", default="admin@example.com", help=_("the demo admin's email address")
    )
    p.add_argument(
        "--iam-enforce-policies",
        action="store_true",
        help=_("the sandbox authenticates every call and enforces IAM policies as AWS does"),
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help=_("run the portal against real AWS (production)"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bootstrap", help=_("create or update the MFA policy and group"))
    p.add_argument("--dry-run", action="store_true", help=_("print the plan, change nothing"))
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser("doctor", help=_("check AWS, the MFA policy, the database and SMTP"))
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("policy", help=_("print an IAM policy for the current settings (JSON)"))
    p.add_argument(
        "kind",
        choices=["runtime", "bootstrap", "mfa"],
        help=_("runtime: the portal's identity; bootstrap: for bootstrap; mfa: the MFA group's"),
    )
    p.add_argument("--format", choices=["json", "cloudformation"], default="json")
    p.set_defaults(func=cmd_policy)

    p = sub.add_parser("invite", help=_("create an IAM user in the MFA group and print its link"))
    p.add_argument("user", metavar="USER", help=_("IAM user name"))
    p.add_argument("--email", required=True, help=_("the new hire's email address"))
    p.add_argument("--group", action="append", help=_("extra group granted after MFA (repeatable)"))
    p.add_argument("--note", help=_("a note shown to the new hire"))
    p.set_defaults(func=cmd_invite)

    p = sub.add_parser("create-admin", help=_("create an admin and print a one-time setup link"))
    p.add_argument("email", metavar="EMAIL", help=_("the admin's email address"))
    p.set_defaults(func=cmd_create_admin)

    p = sub.add_parser("unlock-admin", help=_("lift an admin's lockout after failed sign-ins"))
    p.add_argument("email", metavar="EMAIL", help=_("the admin's email address"))
    p.set_defaults(func=cmd_unlock_admin)

    p = sub.add_parser("create-api-token", help=_("create an API token and print it once"))
    p.add_argument(
        "name", metavar="NAME", help=_("who uses it, e.g. hr-system (shown in the audit)")
    )
    p.add_argument(
        "--scope",
        action="append",
        metavar="S",
        help=_(
            "what it may do (repeatable): users:read, invitations:write, users:lifecycle, "
            "users:adopt, users:delete; default: users:read and invitations:write"
        ),
    )
    p.set_defaults(func=cmd_create_api_token)

    p = sub.add_parser("status", help=_("read IAM and list every user with its status"))
    p.add_argument("--json", action="store_true", help=_("print JSON"))
    p.add_argument(
        "--cached", action="store_true", help=_("list the last read without calling AWS")
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("resend", help=_("a new enrollment link; the old one stops working"))
    p.add_argument("user", metavar="USER", help=_("IAM user name"))
    p.set_defaults(func=cmd_resend)

    p = sub.add_parser("revoke", help=_("make a user's enrollment link stop working"))
    p.add_argument("user", metavar="USER", help=_("IAM user name"))
    p.add_argument(
        "--delete-user", action="store_true", help=_("also delete the user if it never enrolled")
    )
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("reset-mfa", help=_("lost phone: remove MFA and password, new link"))
    p.add_argument("user", metavar="USER", help=_("IAM user name"))
    p.add_argument("--yes", action="store_true", help=_("do not ask for confirmation"))
    p.add_argument("--email", help=_("the email on record, to check it (links go only there)"))
    p.set_defaults(func=cmd_reset_mfa)

    p = sub.add_parser("offboard", help=_("remove everything attached to a user, then the user"))
    p.add_argument("user", metavar="USER", help=_("IAM user name"))
    p.add_argument("--dry-run", action="store_true", help=_("list what would go, change nothing"))
    p.add_argument("--yes", action="store_true", help=_("do not ask to type the user name"))
    p.set_defaults(func=cmd_offboard)

    p = sub.add_parser("send-link", help=_("send an enrollment link to an existing IAM user"))
    p.add_argument("user", metavar="USER", help=_("IAM user name"))
    p.add_argument("--email", required=True, help=_("the person's email address"))
    p.add_argument("--deadline", help=_("YYYY-MM-DD (UTC): MFA group then, not now"))
    p.add_argument(
        "--replace-login-profile", action="store_true", help=_("give a new console password")
    )
    p.add_argument("--group", action="append", help=_("extra group granted after MFA (repeatable)"))
    p.add_argument(
        "--allow-privileged",
        action="store_true",
        help=_("adopt a user holding more than the portal can grant (audited)"),
    )
    p.set_defaults(func=cmd_send_link)

    p = sub.add_parser("set-email", help=_("change where a managed user's links go"))
    p.add_argument("user", metavar="USER", help=_("IAM user name"))
    p.add_argument("--email", required=True, help=_("the person's email address"))
    p.set_defaults(func=cmd_set_email)

    p = sub.add_parser("housekeeping", help=_("run the periodic chores once"))
    p.set_defaults(func=cmd_housekeeping)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Before the parser: its help texts are translated too.
    i18n.set_language(i18n.language_from_env(os.environ.get("LANG")))
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

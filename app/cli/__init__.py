"""The command line: iam-onboard demo | serve | bootstrap | doctor | policy | invite | status.

The parser and `main` are here; each command lives with its kind: servers.py (demo, serve),
aws.py (bootstrap, doctor, policy), admins.py (admins and API tokens), users.py (IAM users).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from app import i18n
from app.cli.admins import cmd_create_admin, cmd_create_api_token, cmd_unlock_admin
from app.cli.aws import cmd_bootstrap, cmd_doctor, cmd_policy
from app.cli.servers import cmd_demo, cmd_serve
from app.cli.users import (
    cmd_housekeeping,
    cmd_invite,
    cmd_offboard,
    cmd_resend,
    cmd_reset_mfa,
    cmd_revoke,
    cmd_send_link,
    cmd_set_email,
    cmd_status,
)
from app.config import load_settings
from app.demo_realism import add_demo_options as add_realism_options
from app.errors import PortalError
from app.i18n import _
from app.logs import setup_logging


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
    add_realism_options(p)  # issue 16: --iam-latency-ms, --iam-consistency-ms, --iam-rate/-burst
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help=_("run the portal against real AWS (production)"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=_("worker processes sharing the port (default 1)"),
    )
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
        settings = load_settings()
    except PortalError as exc:
        print(f"iam-onboard: {exc.message}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    try:
        return int(args.func(args))
    except PortalError as exc:
        print(f"iam-onboard: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

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

from app.config import Settings, load_settings
from app.errors import PortalError
from app.services.portal import CLI_ACTOR, Portal, build_portal

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
        print(f"Database: {database_url}")
        sys.stdout.flush()
        _run_server(portal, host=host, port=args.port)
    finally:
        sandbox.stop()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


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


def cmd_status(args: argparse.Namespace) -> int:
    from app.services.invitations import list_invitations

    rows = list_invitations(_portal())
    if args.json:
        data = [
            {
                "user_name": r.user_name,
                "email": r.email,
                "status": r.status,
                "invited_by": r.invited_by,
                "created_at": r.created_at.isoformat(),
                "expires_at": r.expires_at.isoformat(),
            }
            for r in rows
        ]
        print(json.dumps(data, indent=2))
        return 0
    if not rows:
        print("No invitations yet. Invite someone with: iam-onboard invite USER --email E")
        return 0
    for r in rows:
        print(f"{r.user_name:<32} {r.status:<10} {r.email:<40} {r.created_at:%Y-%m-%d %H:%M}")
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

    p = sub.add_parser("status", help="list invitations and their state")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_status)
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

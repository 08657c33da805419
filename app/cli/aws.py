"""The commands about the AWS account: `bootstrap`, `doctor` and `policy`."""

from __future__ import annotations

import argparse
import json

from app.config import load_settings
from app.i18n import _
from app.services.portal import CLI_ACTOR, build_portal


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from app.services.bootstrap import bootstrap

    steps = bootstrap(build_portal(load_settings()), dry_run=args.dry_run, actor=CLI_ACTOR)
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

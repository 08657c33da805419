"""Doctor: each thing the portal needs, checked, with the fix when it is wrong."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.aws.errors import AwsError
from app.aws.policies import find_faults, mfa_policy_document, policy_drift
from app.services.bootstrap import policy_arn
from app.services.portal import Portal


@dataclass(frozen=True)
class Check:
    ok: bool
    text: str  # what is fine, or the problem and its fix


def _aws_checks(portal: Portal) -> list[Check]:
    iam = portal.iam()
    s = portal.settings
    checks: list[Check] = []
    identity = iam.caller_identity()
    checks.append(Check(True, f"AWS identity: {identity['arn']} (account {identity['account']})"))
    arn = policy_arn(identity["account"], s.mfa_policy)
    policy = iam.get_policy(arn)
    group = iam.get_group(s.mfa_group)
    if group is None:
        checks.append(Check(False, f"group {s.mfa_group} is missing; fix: iam-onboard bootstrap"))
    else:
        checks.append(Check(True, f"group {s.mfa_group} exists"))
    if policy is None:
        checks.append(Check(False, f"policy {s.mfa_policy} is missing; fix: iam-onboard bootstrap"))
    else:
        checks.append(Check(True, f"policy {s.mfa_policy} exists"))
    if group is None:
        return checks
    attached = iam.attached_group_policies(s.mfa_group)
    if policy is not None and arn not in {p["PolicyArn"] for p in attached}:
        checks.append(
            Check(
                False,
                f"policy {s.mfa_policy} is not attached to group {s.mfa_group}; "
                "fix: iam-onboard bootstrap",
            )
        )
    elif policy is not None:
        checks.append(Check(True, f"policy {s.mfa_policy} is attached to group {s.mfa_group}"))
    # The portal's policy, and any other on the group that enforces MFA, is checked for the
    # known faults; unrelated policies (a team's own grants) would only give false alarms.
    for attachment in attached:
        live_policy = iam.get_policy(attachment["PolicyArn"])
        if live_policy is None:
            continue
        document = iam.policy_document(attachment["PolicyArn"], live_policy["DefaultVersionId"])
        if attachment["PolicyArn"] != arn and "MultiFactorAuthPresent" not in str(document):
            continue
        faults = find_faults(document)
        name = attachment["PolicyName"]
        for fault in faults:
            checks.append(Check(False, f"policy {name}: {fault.problem}; fix: {fault.fix}"))
        if attachment["PolicyArn"] == arn:
            drift = policy_drift(document, mfa_policy_document())
            if drift and not faults:
                checks.append(
                    Check(
                        False,
                        f"policy {name} differs from the portal's version ({drift[0]}); "
                        "fix: iam-onboard bootstrap",
                    )
                )
            elif not drift:
                checks.append(Check(True, f"policy {name} matches the portal's version"))
    return checks


def _database_checks(portal: Portal) -> list[Check]:
    try:
        portal.db.ping()
    except Exception as exc:  # any driver error means the same thing to the operator
        return [
            Check(
                False,
                f"database unreachable ({type(exc).__name__}); fix: check IAM_ONBOARD_DATABASE_URL",
            )
        ]
    if portal.db.pending_migrations():
        return [
            Check(True, "database reachable"),
            Check(False, "database not migrated; fix: start the portal once (it migrates)"),
        ]
    return [Check(True, "database reachable and migrated")]


def _smtp_check(portal: Portal) -> list[Check]:
    url = portal.settings.smtp_url
    if not url:
        return [Check(True, "SMTP not configured: mail goes to the outbox")]
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port or 465, timeout=5)
        else:
            client = smtplib.SMTP(host, port or 25, timeout=5)
        with client:
            client.ehlo()
    except (OSError, smtplib.SMTPException) as exc:
        return [Check(False, f"SMTP server {host}:{port} unreachable ({exc}); fix: check the URL")]
    return [Check(True, f"SMTP server {host}:{port} answers")]


def run_checks(portal: Portal) -> list[Check]:
    """Every check, in order; problems never stop the later checks."""
    checks: list[Check] = []
    try:
        checks.extend(_aws_checks(portal))
    except AwsError as exc:
        checks.append(Check(False, f"AWS: {exc.message}"))
    checks.extend(_database_checks(portal))
    checks.extend(_smtp_check(portal))
    return checks

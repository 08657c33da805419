"""Doctor: each thing the portal needs, checked, with the fix when it is wrong."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.aws.errors import AwsError, NoSuchEntity
from app.aws.iam import IamGateway
from app.aws.ownership import PROTECTED_TAG, is_true_tag
from app.aws.policies import mfa_policy_document, policy_drift
from app.aws.policy_documents import ADMIN_POLICIES
from app.aws.policy_faults import find_faults
from app.i18n import _
from app.services.admins import oidc
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
    checks.append(
        Check(
            True,
            _("AWS identity: {arn} (account {account})").format(
                arn=identity["arn"], account=identity["account"]
            ),
        )
    )
    arn = policy_arn(identity["account"], s.mfa_policy)
    policy = iam.get_policy(arn)
    group = iam.get_group(s.mfa_group)
    group_name, policy_name = s.mfa_group, s.mfa_policy
    if group is None:
        text = _("group {group} is missing; fix: iam-onboard bootstrap")
        checks.append(Check(False, text.format(group=group_name)))
    else:
        checks.append(Check(True, _("group {group} exists").format(group=group_name)))
    if policy is None:
        text = _("policy {policy} is missing; fix: iam-onboard bootstrap")
        checks.append(Check(False, text.format(policy=policy_name)))
    else:
        checks.append(Check(True, _("policy {policy} exists").format(policy=policy_name)))
    if group is None:
        return checks
    attached = iam.attached_group_policies(s.mfa_group)
    if policy is not None and arn not in {p["PolicyArn"] for p in attached}:
        text = _("policy {policy} is not attached to group {group}; fix: iam-onboard bootstrap")
        checks.append(Check(False, text.format(policy=policy_name, group=group_name)))
    elif policy is not None:
        text = _("policy {policy} is attached to group {group}")
        checks.append(Check(True, text.format(policy=policy_name, group=group_name)))
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
            text = _("policy {policy}: {problem}; fix: {fix}")
            checks.append(
                Check(False, text.format(policy=name, problem=fault.problem, fix=fault.fix))
            )
        if attachment["PolicyArn"] == arn:
            drift = policy_drift(document, mfa_policy_document())
            if drift and not faults:
                text = _(
                    "policy {policy} differs from the portal's version ({difference}); "
                    "fix: iam-onboard bootstrap"
                )
                checks.append(Check(False, text.format(policy=name, difference=drift[0])))
            elif not drift:
                text = _("policy {policy} matches the portal's version")
                checks.append(Check(True, text.format(policy=name)))
    return checks


def _admin_holders(iam: IamGateway) -> dict[str, list[str]]:
    """Who holds each account-wide admin policy: user name -> how ("AdministratorAccess",
    "IAMFullAccess through group Admins"). One call a policy, one a group: never one per user."""
    holders: dict[str, list[str]] = {}
    for arn in ADMIN_POLICIES:
        policy = arn.rsplit("/", 1)[1]
        try:
            users, groups = iam.policy_holders(arn)
        except NoSuchEntity:  # a partition without this AWS managed policy
            continue
        for user in users:
            holders.setdefault(user, []).append(policy)
        for group in groups:
            via = _("{policy} through group {group}").format(policy=policy, group=group)
            for user in iam.group_members(group):
                holders.setdefault(user, []).append(via)
    return holders


def _unprotected_admin_checks(portal: Portal) -> list[Check]:
    """Users who could take the account over but lack the tag that keeps the portal off them."""
    iam = portal.iam()
    try:
        holders = _admin_holders(iam)
        unprotected = {
            user: how
            for user, how in sorted(holders.items())
            if not is_true_tag(iam.user_tags(user).get(PROTECTED_TAG))
        }
    except AwsError as exc:
        text = _("cannot list the users who hold administrator policies: {problem}")
        return [Check(False, text.format(problem=exc.message))]
    if not unprotected:
        return [Check(True, _("every user with administrator policies is tagged protected"))]
    text = _(
        "user {user} holds {how} but is not tagged {tag}, so the portal may adopt it; "
        "fix: {command}"
    )
    return [
        Check(
            False,
            text.format(
                user=user,
                how=", ".join(how),
                tag=f"{PROTECTED_TAG}=true",
                command=f"aws iam tag-user --user-name {user} "
                f"--tags Key={PROTECTED_TAG},Value=true",
            ),
        )
        for user, how in unprotected.items()
    ]


def _database_checks(portal: Portal) -> list[Check]:
    try:
        portal.db.ping()
    except Exception as exc:  # any driver error means the same thing to the operator
        text = _("database unreachable ({problem}); fix: check IAM_ONBOARD_DATABASE_URL")
        return [Check(False, text.format(problem=type(exc).__name__))]
    if portal.db.pending_migrations():
        return [
            Check(True, _("database reachable")),
            Check(False, _("database not migrated; fix: start the portal once (it migrates)")),
        ]
    return [Check(True, _("database reachable and migrated"))]


def _smtp_check(portal: Portal) -> list[Check]:
    url = portal.settings.smtp_url
    if not url:
        return [Check(True, _("SMTP not configured: mail goes to the outbox"))]
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
        text = _("SMTP server {server} unreachable ({problem}); fix: check the URL")
        return [Check(False, text.format(server=f"{host}:{port}", problem=exc))]
    return [Check(True, _("SMTP server {server} answers").format(server=f"{host}:{port}"))]


def _sso_check(portal: Portal) -> list[Check]:
    issuer = portal.settings.oidc_issuer
    if not issuer:
        return []
    try:
        oidc.signing_keys(portal)
    except oidc.OidcUnavailable as exc:
        text = _("identity provider {issuer}: {problem} Fix: check IAM_ONBOARD_OIDC_ISSUER")
        return [Check(False, text.format(issuer=issuer, problem=exc.message))]
    text = _("identity provider {issuer} answers (discovery document and keys)")
    return [Check(True, text.format(issuer=issuer))]


def run_checks(portal: Portal) -> list[Check]:
    """Every check, in order; problems never stop the later checks."""
    checks: list[Check] = []
    try:
        checks.extend(_aws_checks(portal))
    except AwsError as exc:
        checks.append(Check(False, _("AWS: {problem}").format(problem=exc.message)))
    else:
        checks.extend(_unprotected_admin_checks(portal))
    checks.extend(_database_checks(portal))
    checks.extend(_smtp_check(portal))
    checks.extend(_sso_check(portal))
    return checks

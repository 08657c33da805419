"""Bootstrap: the MFA policy and group, created or brought up to date, attached to each other."""

from __future__ import annotations

from dataclasses import dataclass

from app.aws.policies import mfa_policy_document, policy_drift, render_policy
from app.aws.policy_documents import DESCRIPTIONS
from app.i18n import _
from app.services import audit
from app.services.portal import Actor, Portal

POLICY_DESCRIPTION = DESCRIPTIONS["mfa"]


@dataclass(frozen=True)
class Step:
    """One line of the plan: `changed` is False when the thing was already right."""

    changed: bool
    text: str


def policy_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:policy/{name}"


def bootstrap(portal: Portal, *, dry_run: bool, actor: Actor) -> list[Step]:
    """Create or update the MFA policy and group and attach them; with dry_run, change nothing."""
    iam = portal.iam()
    s = portal.settings
    account = iam.caller_identity()["account"]
    arn = policy_arn(account, s.mfa_policy)
    desired = mfa_policy_document()
    steps: list[Step] = []
    names = {"policy": s.mfa_policy, "group": s.mfa_group, "arn": arn}

    def plan(done: str, planned: str) -> str:
        # Two whole sentences: "would" does not sit in front of the verb in every language.
        return (planned if dry_run else done).format(**names)

    policy = iam.get_policy(arn)
    if policy is None:
        if not dry_run:
            iam.create_policy(s.mfa_policy, render_policy(desired), description=POLICY_DESCRIPTION)
        steps.append(
            Step(
                True,
                plan(
                    _("create policy {policy} ({arn})"), _("would create policy {policy} ({arn})")
                ),
            )
        )
    else:
        live = iam.policy_document(arn, policy["DefaultVersionId"])
        drift = policy_drift(live, desired)
        if drift:
            for line in drift:
                text = _("drift in policy {policy}: {difference}")
                steps.append(Step(True, text.format(policy=s.mfa_policy, difference=line)))
            if not dry_run:
                versions = iam.policy_versions(arn)
                if len(versions) >= 5:  # IAM keeps at most five versions of a policy
                    oldest = min(
                        (v for v in versions if not v["IsDefaultVersion"]),
                        key=lambda v: v["CreateDate"],
                    )
                    iam.delete_policy_version(arn, oldest["VersionId"])
                iam.create_policy_version(arn, render_policy(desired))
            text = plan(
                _("update policy {policy} to the portal's version"),
                _("would update policy {policy} to the portal's version"),
            )
            steps.append(Step(True, text))
        else:
            steps.append(Step(False, _("policy {policy} is up to date").format(**names)))

    if iam.get_group(s.mfa_group) is None:
        if not dry_run:
            iam.create_group(s.mfa_group)
        steps.append(Step(True, plan(_("create group {group}"), _("would create group {group}"))))
        attached: list[str] = []
    else:
        steps.append(Step(False, _("group {group} exists").format(**names)))
        attached = [p["PolicyArn"] for p in iam.attached_group_policies(s.mfa_group)]

    if arn not in attached:
        if not dry_run:
            iam.attach_group_policy(s.mfa_group, arn)
        text = plan(
            _("attach policy {policy} to group {group}"),
            _("would attach policy {policy} to group {group}"),
        )
        steps.append(Step(True, text))
    else:
        text = _("policy {policy} is attached to group {group}").format(**names)
        steps.append(Step(False, text))

    if not dry_run and any(step.changed for step in steps):
        audit.record(
            portal,
            actor=actor,
            action="bootstrap",
            detail="; ".join(step.text for step in steps if step.changed),
        )
    return steps

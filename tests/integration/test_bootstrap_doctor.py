"""bootstrap and doctor on the sandbox: idempotence, dry runs, drift, the seed policy faults."""

from __future__ import annotations

import json
from pathlib import Path

from app.services.bootstrap import bootstrap
from app.services.doctor import run_checks
from app.services.portal import CLI_ACTOR
from tests.conftest import make_portal

SEED_DOC = json.loads((Path(__file__).parent.parent / "data" / "seed-mfa-policy.json").read_text())


def test_first_run_creates_second_run_has_nothing_to_change(aws, sqlite_url, iam_client):
    portal = make_portal(aws, sqlite_url)
    first = bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    assert [s.changed for s in first] == [True, True, True]
    second = bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    assert not any(s.changed for s in second)
    attached = iam_client.list_attached_group_policies(GroupName="MFA")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["MFA"]


def test_dry_run_changes_nothing(aws, sqlite_url, iam_client):
    portal = make_portal(aws, sqlite_url)
    plan = bootstrap(portal, dry_run=True, actor=CLI_ACTOR)
    assert all(s.text.startswith("would ") for s in plan if s.changed)
    assert iam_client.list_groups()["Groups"] == []
    assert iam_client.list_policies(Scope="Local")["Policies"] == []


def _install_seed_policy(iam_client) -> None:
    arn = iam_client.create_policy(PolicyName="MFA", PolicyDocument=json.dumps(SEED_DOC))["Policy"][
        "Arn"
    ]
    iam_client.create_group(GroupName="MFA")
    iam_client.attach_group_policy(GroupName="MFA", PolicyArn=arn)


def test_doctor_names_each_fault_of_the_seed_policy_then_passes_after_bootstrap(
    aws, sqlite_url, iam_client
):
    _install_seed_policy(iam_client)
    portal = make_portal(aws, sqlite_url)
    problems = [c.text for c in run_checks(portal) if not c.ok]
    text = "\n".join(problems)
    assert "GetAccountPasswordPolicy" in text
    assert "ListUsers" in text
    assert len(problems) >= 2

    plan = bootstrap(portal, dry_run=True, actor=CLI_ACTOR)
    assert any(s.text.startswith("drift in policy MFA") for s in plan)
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    checks = run_checks(portal)
    assert all(c.ok for c in checks), [c.text for c in checks if not c.ok]
    assert any("AWS identity" in c.text for c in checks)


def test_doctor_reports_missing_group_and_detached_policy(aws, sqlite_url):
    portal = make_portal(aws, sqlite_url)
    problems = [c.text for c in run_checks(portal) if not c.ok]
    assert any("group MFA is missing" in p for p in problems)
    assert any("policy MFA is missing" in p for p in problems)


def test_doctor_reports_unreachable_smtp(aws, sqlite_url):
    portal = make_portal(aws, sqlite_url, smtp_url="smtp://127.0.0.1:9")
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    problems = [c.text for c in run_checks(portal) if not c.ok]
    assert len(problems) == 1 and "SMTP server 127.0.0.1:9 unreachable" in problems[0]


# -- the MFA policy bootstrap installs, and what doctor says of older ones -------------------

OLD_PORTAL_DOC = json.loads(
    (Path(__file__).parent.parent / "data" / "old-portal-mfa-policy.json").read_text()
)
SELF_SERVICE_BEFORE_MFA = (
    "iam:CreateAccessKey",
    "iam:UpdateAccessKey",
    "iam:CreateVirtualMFADevice",
    "iam:EnableMFADevice",
)


def _live_group_policy(iam_client) -> dict:
    attached = iam_client.list_attached_group_policies(GroupName="MFA")["AttachedPolicies"]
    assert len(attached) == 1
    arn = attached[0]["PolicyArn"]
    version = iam_client.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam_client.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"][
        "Document"
    ]


def _exempt_before_mfa(document: dict) -> set[str]:
    deny = next(s for s in document["Statement"] if s["Effect"] == "Deny" and "NotAction" in s)
    assert deny["Condition"] == {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}
    return set(deny["NotAction"])


def _install_policy(iam_client, document: dict) -> None:
    arn = iam_client.create_policy(PolicyName="MFA", PolicyDocument=json.dumps(document))["Policy"][
        "Arn"
    ]
    iam_client.create_group(GroupName="MFA")
    iam_client.attach_group_policy(GroupName="MFA", PolicyArn=arn)


def test_bootstrap_installs_a_group_policy_that_denies_keys_and_devices_without_mfa(
    aws, sqlite_url, iam_client
):
    bootstrap(make_portal(aws, sqlite_url), dry_run=False, actor=CLI_ACTOR)
    exempt = _exempt_before_mfa(_live_group_policy(iam_client))
    assert exempt == {
        "sts:GetSessionToken",
        "iam:GetUser",
        "iam:ChangePassword",
        "iam:GetAccountPasswordPolicy",
        "iam:ResyncMFADevice",
    }


def test_bootstrap_replaces_the_portals_previous_policy(aws, sqlite_url, iam_client):
    _install_policy(iam_client, OLD_PORTAL_DOC)
    assert set(SELF_SERVICE_BEFORE_MFA) <= _exempt_before_mfa(_live_group_policy(iam_client))
    portal = make_portal(aws, sqlite_url)
    steps = bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    assert any("NotAction also has iam:CreateAccessKey" in s.text for s in steps)
    assert not set(SELF_SERVICE_BEFORE_MFA) & _exempt_before_mfa(_live_group_policy(iam_client))


def test_doctor_reports_keys_and_enrollment_open_without_mfa_in_the_old_policy(
    aws, sqlite_url, iam_client
):
    _install_policy(iam_client, OLD_PORTAL_DOC)
    portal = make_portal(aws, sqlite_url)
    problems = [c.text for c in run_checks(portal) if not c.ok]
    keys = [p for p in problems if "iam:CreateAccessKey, iam:UpdateAccessKey allowed" in p]
    devices = [
        p for p in problems if "iam:CreateVirtualMFADevice, iam:EnableMFADevice allowed" in p
    ]
    assert len(keys) == 1 and "leaked access key" in keys[0]
    assert len(devices) == 1 and "device of their own" in devices[0]
    assert len(problems) == 2, problems  # its other faults were fixed long ago


def test_doctor_reports_keys_and_enrollment_open_in_the_seed(aws, sqlite_url, iam_client):
    _install_policy(iam_client, SEED_DOC)
    problems = "\n".join(c.text for c in run_checks(make_portal(aws, sqlite_url)) if not c.ok)
    assert "iam:CreateAccessKey, iam:UpdateAccessKey allowed without MFA" in problems
    assert "iam:CreateVirtualMFADevice, iam:EnableMFADevice allowed without MFA" in problems


# -- administrators without the protected tag ------------------------------------------------

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
IAM_FULL = "arn:aws:iam::aws:policy/IAMFullAccess"


def test_doctor_lists_administrators_without_the_protected_tag(aws, sqlite_url, iam_client):
    portal = make_portal(aws, sqlite_url)
    bootstrap(portal, dry_run=False, actor=CLI_ACTOR)
    for name in ("root-ish", "breakglass", "ops1", "ops2", "dev"):
        iam_client.create_user(UserName=name)
    iam_client.attach_user_policy(UserName="root-ish", PolicyArn=ADMIN)
    iam_client.attach_user_policy(UserName="breakglass", PolicyArn=ADMIN)
    iam_client.tag_user(
        UserName="breakglass", Tags=[{"Key": "iam-onboard:protected", "Value": "true"}]
    )
    iam_client.create_group(GroupName="Ops")
    iam_client.attach_group_policy(GroupName="Ops", PolicyArn=IAM_FULL)
    iam_client.add_user_to_group(UserName="ops1", GroupName="Ops")
    iam_client.add_user_to_group(UserName="ops2", GroupName="Ops")
    iam_client.tag_user(UserName="ops2", Tags=[{"Key": "iam-onboard:protected", "Value": "TRUE"}])
    iam_client.attach_user_policy(
        UserName="dev", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess"
    )

    problems = [c.text for c in run_checks(portal) if not c.ok]
    assert problems == [
        "user ops1 holds IAMFullAccess through group Ops but is not tagged "
        "iam-onboard:protected=true, so the portal may adopt it; fix: aws iam tag-user "
        "--user-name ops1 --tags Key=iam-onboard:protected,Value=true",
        "user root-ish holds AdministratorAccess but is not tagged "
        "iam-onboard:protected=true, so the portal may adopt it; fix: aws iam tag-user "
        "--user-name root-ish --tags Key=iam-onboard:protected,Value=true",
    ]

    iam_client.tag_user(UserName="ops1", Tags=[{"Key": "iam-onboard:protected", "Value": "true"}])
    iam_client.tag_user(
        UserName="root-ish", Tags=[{"Key": "iam-onboard:protected", "Value": "true"}]
    )
    checks = run_checks(portal)
    assert all(c.ok for c in checks), [c.text for c in checks if not c.ok]
    assert any(
        "every user with administrator policies is tagged protected" in c.text for c in checks
    )

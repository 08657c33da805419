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

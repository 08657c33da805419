"""The runtime policy grants exactly what the IAM gateway calls, and nothing more."""

from __future__ import annotations

import re
from pathlib import Path

from app.aws.policies import load_policy, policy_actions

GATEWAY = Path(__file__).resolve().parents[2] / "app" / "aws" / "iam.py"
# Only `iam-onboard bootstrap` makes these; its identity uses bootstrap-policy.json.
BOOTSTRAP_ONLY = {
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:DeletePolicyVersion",
    "iam:CreateGroup",
    "iam:AttachGroupPolicy",
}


def gateway_actions() -> set[str]:
    source = GATEWAY.read_text()
    operations = set(re.findall(r'self\._(?:call|pages)\(\s*"(\w+)"', source))
    return {f"sts:{op}" if op == "GetCallerIdentity" else f"iam:{op}" for op in operations}


def test_the_gateway_calls_are_found():
    actions = gateway_actions()
    assert "iam:CreateUser" in actions and "iam:EnableMFADevice" in actions
    assert len(actions) > 40


def test_runtime_policy_lists_exactly_the_gateway_calls():
    runtime = policy_actions(load_policy("runtime-policy"))
    assert runtime == gateway_actions() - BOOTSTRAP_ONLY


def test_bootstrap_policy_covers_what_bootstrap_calls():
    bootstrap = policy_actions(load_policy("bootstrap-policy"))
    assert BOOTSTRAP_ONLY <= bootstrap

"""The runtime policy grants exactly what the IAM gateway calls, and nothing more."""

from __future__ import annotations

import re
from pathlib import Path

from app.aws.policies import policy_actions
from app.aws.policy_documents import bootstrap_policy, runtime_policy
from app.config import load_settings

GATEWAY = Path(__file__).resolve().parents[2] / "app" / "aws" / "iam.py"
# Only `iam-onboard bootstrap` makes these; its identity uses `iam-onboard policy bootstrap`.
BOOTSTRAP_ONLY = {
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:DeletePolicyVersion",
    "iam:CreateGroup",
    "iam:AttachGroupPolicy",
}


SETTINGS = load_settings(secret_key="t" * 40)


def allowed(doc: dict) -> set[str]:
    return policy_actions({"Statement": [s for s in doc["Statement"] if s["Effect"] == "Allow"]})


def gateway_actions() -> set[str]:
    source = GATEWAY.read_text()
    operations = set(re.findall(r'self\._(?:call|pages)\(\s*"(\w+)"', source))
    return {f"sts:{op}" if op == "GetCallerIdentity" else f"iam:{op}" for op in operations}


def test_the_gateway_calls_are_found():
    actions = gateway_actions()
    assert "iam:CreateUser" in actions and "iam:EnableMFADevice" in actions
    assert len(actions) > 40


def test_runtime_policy_lists_exactly_the_gateway_calls():
    runtime = allowed(runtime_policy(SETTINGS))
    assert runtime == gateway_actions() - BOOTSTRAP_ONLY


def test_bootstrap_policy_covers_what_bootstrap_calls():
    bootstrap = allowed(bootstrap_policy(SETTINGS))
    assert BOOTSTRAP_ONLY <= bootstrap

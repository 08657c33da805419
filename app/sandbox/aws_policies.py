"""The sandbox account holds the AWS managed policies an operator attaches to administrators.

Every real account has AWS's managed policies; moto loads none unless asked to load all 1,500
(MOTO_IAM_LOAD_MANAGED_POLICIES, seconds per reset). The few here are what `doctor` looks for
and what tests attach to an administrator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.models import AWSManagedPolicy, IAMBackend, ManagedPolicy

from app.sandbox.patching import patch

SANDBOX_AWS_POLICIES = ("AdministratorAccess", "IAMFullAccess", "ReadOnlyAccess")


@cache
def _policy_data() -> dict[str, Any]:
    everything = json.loads(aws_managed_policies_data)
    return {name: everything[name] for name in SANDBOX_AWS_POLICIES}


@patch(IAMBackend, "_init_aws_policies")
def _init_aws_policies(
    self: IAMBackend, original: Callable[..., list[ManagedPolicy]]
) -> list[ManagedPolicy]:
    policies = original(self)
    if policies:  # moto was told to load them all
        return policies
    return [
        AWSManagedPolicy.from_data(name, self.account_id, self.region_name, data)
        for name, data in _policy_data().items()
    ]

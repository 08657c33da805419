"""The known faults of an MFA-enforcing group policy (docs/mfa-policy.md), found in a live document.

`doctor` reports each by its code; docs/mfa-policy.md explains every one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from app.aws.policies import as_list, parse_policy, policy_statements
from app.i18n import _

MFA_PRESENT_KEY = "aws:multifactorauthpresent"


@cache
def _action_pattern(pattern: str) -> re.Pattern[str]:
    regex = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.lower()
    )
    return re.compile(regex)


def _action_matches(patterns: Iterable[Any], action: str) -> bool:
    return any(_action_pattern(str(p)).fullmatch(action.lower()) for p in patterns)


def _applies_to(statement: Mapping[str, Any], action: str) -> bool:
    """Whether the statement's Action/NotAction covers `action` (conditions aside)."""
    if "Action" in statement:
        return _action_matches(as_list(statement["Action"]), action)
    if "NotAction" in statement:
        return not _action_matches(as_list(statement["NotAction"]), action)
    return False


def _effect(statement: Mapping[str, Any]) -> str:
    return str(statement.get("Effect", "")).lower()


def _allows(doc: Mapping[str, Any], action: str) -> list[Mapping[str, Any]]:
    return [s for s in policy_statements(doc) if _effect(s) == "allow" and _applies_to(s, action)]


def _mfa_deny_operator(statement: Mapping[str, Any]) -> str | None:
    """`Bool` or `BoolIfExists` when the statement denies on aws:MultiFactorAuthPresent false."""
    if _effect(statement) != "deny":
        return None
    conditions = statement.get("Condition")
    if not isinstance(conditions, Mapping):
        return None
    for operator, block in conditions.items():
        if str(operator).lower() not in ("bool", "boolifexists") or not isinstance(block, Mapping):
            continue
        for key, value in block.items():
            values = {str(v).lower() for v in as_list(value)}
            if str(key).lower() == MFA_PRESENT_KEY and "false" in values:
                return "BoolIfExists" if str(operator).lower() == "boolifexists" else "Bool"
    return None


def _mfa_denies(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in policy_statements(doc) if _mfa_deny_operator(s) is not None]


def _blocked_before_mfa(doc: Mapping[str, Any], action: str) -> bool:
    return any(_applies_to(s, action) for s in _mfa_denies(doc))


def _needs_mfa(statement: Mapping[str, Any]) -> bool:
    """An Allow conditioned on `Bool` aws:MultiFactorAuthPresent true: never without MFA."""
    conditions = statement.get("Condition")
    if not isinstance(conditions, Mapping):
        return False
    for operator, block in conditions.items():
        if str(operator).lower() != "bool" or not isinstance(block, Mapping):
            continue
        for key, value in block.items():
            values = {str(v).lower() for v in as_list(value)}
            if str(key).lower() == MFA_PRESENT_KEY and values == {"true"}:
                return True
    return False


def _open_to_a_bare_key(doc: Mapping[str, Any], action: str) -> bool:
    """Whether a request signed with a long-term access key alone (no MFA) may reach `action`:
    this policy allows it, or exempts it from its deny-unless-MFA (another policy may allow it).
    Only a `BoolIfExists` deny stops such a request: it carries no aws:MultiFactorAuthPresent.
    """
    denies = _mfa_denies(doc)
    if any(_applies_to(s, action) and _mfa_deny_operator(s) == "BoolIfExists" for s in denies):
        return False
    allowed = any(not _needs_mfa(s) for s in _allows(doc, action))
    return allowed or bool(denies)


# -- faults ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyFault:
    """A known fault of the MFA policy: a stable code, what goes wrong, how to fix it."""

    code: str
    problem: str
    fix: str


def _fault_password_policy_resource(doc: Mapping[str, Any]) -> PolicyFault | None:
    grants = _allows(doc, "iam:GetAccountPasswordPolicy")
    if not grants or any("*" in as_list(s.get("Resource")) for s in grants):
        return None
    return PolicyFault(
        "password-policy-resource",
        _(
            "iam:GetAccountPasswordPolicy is allowed only on a user resource, "
            "so it is never allowed: it is an account-level action"
        ),
        _('allow iam:GetAccountPasswordPolicy in its own statement with "Resource": "*"'),
    )


def _fault_password_policy_blocked(doc: Mapping[str, Any]) -> PolicyFault | None:
    if not _allows(doc, "iam:GetAccountPasswordPolicy"):
        return None
    if not _blocked_before_mfa(doc, "iam:GetAccountPasswordPolicy"):
        return None
    return PolicyFault(
        "password-policy-blocked",
        _(
            "iam:GetAccountPasswordPolicy is denied until MFA, so a new user cannot read "
            "the password rules when choosing a password"
        ),
        _(
            "add iam:GetAccountPasswordPolicy to the NotAction list of the deny-unless-MFA "
            "statement"
        ),
    )


def _fault_mfa_resource_by_username(doc: Mapping[str, Any]) -> PolicyFault | None:
    for statement in policy_statements(doc):
        for resource in as_list(statement.get("Resource")):
            text = str(resource).lower()
            if ":mfa/" in text and "${aws:username}" in text.split(":mfa/", 1)[1]:
                return PolicyFault(
                    "mfa-resource-by-username",
                    _(
                        "MFA device actions are limited to {resource}, which fails "
                        "for a device that is not named after its user"
                    ).format(resource=resource),
                    _(
                        "use {device_arn} for iam:CreateVirtualMFADevice and "
                        "{user_arn} for the other device actions"
                    ).format(
                        device_arn="arn:aws:iam::*:mfa/*",
                        user_arn="arn:aws:iam::*:user/${aws:username}",
                    ),
                )
    return None


def _fault_list_users_exposed(doc: Mapping[str, Any]) -> PolicyFault | None:
    allowed = bool(_allows(doc, "iam:ListUsers"))
    denies = _mfa_denies(doc)
    exempt = bool(denies) and not _blocked_before_mfa(doc, "iam:ListUsers")
    if not (allowed or exempt):
        return None
    if allowed:
        problem = _(
            "iam:ListUsers is allowed: it shows every user name in the account "
            "and enrolling an MFA device does not need it"
        )
    else:
        problem = _(
            "iam:ListUsers is exempt from the deny-unless-MFA statement: it shows every user "
            "name in the account and enrolling an MFA device does not need it"
        )
    return PolicyFault(
        "list-users-exposed",
        problem,
        _("remove iam:ListUsers from the Allow statements and from the NotAction list"),
    )


def _fault_deny_uses_bool(doc: Mapping[str, Any]) -> PolicyFault | None:
    operators = {_mfa_deny_operator(s) for s in _mfa_denies(doc)}
    if "Bool" not in operators or "BoolIfExists" in operators:
        return None
    return PolicyFault(
        "deny-uses-bool",
        _(
            "the deny-unless-MFA statement uses Bool: requests signed with long-term access "
            "keys carry no aws:MultiFactorAuthPresent key, so they are not denied"
        ),
        _("use {condition} in the deny statement").format(
            condition='"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}'
        ),
    )


def _fault_no_deny_without_mfa(doc: Mapping[str, Any]) -> PolicyFault | None:
    if _mfa_denies(doc):
        return None
    return PolicyFault(
        "no-deny-without-mfa",
        _("no statement denies access without MFA: users can work without ever binding a device"),
        _(
            "add a Deny statement with NotAction for the self-service actions, Resource *, "
            "and {condition}"
        ).format(condition='"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}'),
    )


def _fault_change_password_blocked(doc: Mapping[str, Any]) -> PolicyFault | None:
    if not _blocked_before_mfa(doc, "iam:ChangePassword"):
        return None
    return PolicyFault(
        "change-password-blocked",
        _(
            "iam:ChangePassword is denied until MFA, so a new user cannot set a password "
            "at first sign-in"
        ),
        _("add iam:ChangePassword to the NotAction list of the deny-unless-MFA statement"),
    )


def _fault_access_keys_without_mfa(doc: Mapping[str, Any]) -> PolicyFault | None:
    actions = [
        a for a in ("iam:CreateAccessKey", "iam:UpdateAccessKey") if _open_to_a_bare_key(doc, a)
    ]
    if not actions:
        return None
    return PolicyFault(
        "access-keys-without-mfa",
        _(
            "{actions} allowed without MFA: whoever holds a leaked access key can make a new "
            "key or bring back a deactivated one"
        ).format(actions=", ".join(actions)),
        _(
            "take {actions} out of the NotAction list of the deny-unless-MFA statement "
            "(which must use BoolIfExists); users manage their keys once signed in with MFA"
        ).format(actions=", ".join(actions)),
    )


def _fault_self_enrollment_without_mfa(doc: Mapping[str, Any]) -> PolicyFault | None:
    candidates = ("iam:CreateVirtualMFADevice", "iam:EnableMFADevice")
    actions = [a for a in candidates if _open_to_a_bare_key(doc, a)]
    if not actions:
        return None
    return PolicyFault(
        "self-enrollment-without-mfa",
        _(
            "{actions} allowed without MFA: whoever holds a user's leaked access key can bind "
            "a device of their own and get an MFA session with all of that user's rights"
        ).format(actions=", ".join(actions)),
        _(
            "take {actions} out of the NotAction list of the deny-unless-MFA statement "
            "(which must use BoolIfExists); the portal enrolls every device"
        ).format(actions=", ".join(actions)),
    )


_CHECKS = (
    _fault_password_policy_resource,
    _fault_password_policy_blocked,
    _fault_mfa_resource_by_username,
    _fault_list_users_exposed,
    _fault_deny_uses_bool,
    _fault_no_deny_without_mfa,
    _fault_change_password_blocked,
    _fault_access_keys_without_mfa,
    _fault_self_enrollment_without_mfa,
)


def find_faults(doc: Mapping[str, Any] | str) -> list[PolicyFault]:
    """The known faults of an MFA-enforcing policy (docs/mfa-policy.md) in `doc`, in order."""
    parsed = parse_policy(doc)
    return [fault for check in _CHECKS if (fault := check(parsed)) is not None]

"""IAM policy documents as data: the MFA policy, its known faults, drift between two versions.

Pure functions only (no boto3): the gateway fetches documents, this module judges them.
Policy grammar handled here: `Statement` may be one object or a list; `Action`, `NotAction`,
`Resource` and condition values may be one string or a list; action names are case-insensitive
and may hold `*` and `?` wildcards.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import unquote

from app.i18n import _

PolicyDocument = dict[str, Any]

# Managed policy documents: at most 6,144 characters, whitespace not counted.
POLICY_SIZE_LIMIT = 6144

MFA_PRESENT_KEY = "aws:multifactorauthpresent"

_POLICY_NAME = re.compile(r"[a-z0-9-]+")


# -- loading and rendering ------------------------------------------------------------------


@cache
def _policy_text(name: str) -> str:
    if name.endswith(".json"):
        name = name[: -len(".json")]
    if not _POLICY_NAME.fullmatch(name):
        raise ValueError(f"not a policy name: {name!r}")
    return (resources.files("app") / "policies" / f"{name}.json").read_text(encoding="utf-8")


def load_policy(name: str) -> PolicyDocument:
    """The policy shipped as app/policies/<name>.json (e.g. "runtime-policy"), as a fresh dict."""
    document = json.loads(_policy_text(name))
    if not isinstance(document, dict):
        raise ValueError(f"policy {name} is not a JSON object")
    return document


def mfa_policy_document() -> PolicyDocument:
    """The MFA policy the portal installs on its group (DESIGN §6), as a fresh dict."""
    return load_policy("mfa-policy")


def render_policy(doc: Mapping[str, Any]) -> str:
    """Compact, stable JSON for CreatePolicy / CreatePolicyVersion; refuses oversized documents."""
    text = json.dumps(doc, sort_keys=False, separators=(",", ":"))
    size = len(re.sub(r"\s", "", text))
    if size > POLICY_SIZE_LIMIT:
        raise ValueError(f"policy document has {size} characters; IAM allows {POLICY_SIZE_LIMIT}")
    return text


def parse_policy(doc: Mapping[str, Any] | str) -> PolicyDocument:
    """A policy document as a dict, from a dict, JSON text, or URL-encoded JSON text."""
    if isinstance(doc, Mapping):
        return copy.deepcopy(dict(doc))
    text = doc.strip()
    if not text.startswith("{"):
        # The IAM API returns documents URL-encoded; boto3 decodes them, other clients may not.
        text = unquote(text)
    parsed = json.loads(text)
    if not isinstance(parsed, dict):
        raise ValueError("a policy document must be a JSON object")
    return parsed


# -- normalising ----------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in _as_list(doc.get("Statement")) if isinstance(s, Mapping)]


def policy_actions(doc: Mapping[str, Any] | str) -> set[str]:
    """Every action named in an `Action` element of the document, as written."""
    return {
        str(action)
        for statement in _statements(parse_policy(doc))
        for action in _as_list(statement.get("Action"))
    }


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
        return _action_matches(_as_list(statement["Action"]), action)
    if "NotAction" in statement:
        return not _action_matches(_as_list(statement["NotAction"]), action)
    return False


def _effect(statement: Mapping[str, Any]) -> str:
    return str(statement.get("Effect", "")).lower()


def _allows(doc: Mapping[str, Any], action: str) -> list[Mapping[str, Any]]:
    return [s for s in _statements(doc) if _effect(s) == "allow" and _applies_to(s, action)]


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
            values = {str(v).lower() for v in _as_list(value)}
            if str(key).lower() == MFA_PRESENT_KEY and "false" in values:
                return "BoolIfExists" if str(operator).lower() == "boolifexists" else "Bool"
    return None


def _mfa_denies(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in _statements(doc) if _mfa_deny_operator(s) is not None]


def _blocked_before_mfa(doc: Mapping[str, Any], action: str) -> bool:
    return any(_applies_to(s, action) for s in _mfa_denies(doc))


# -- faults ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyFault:
    """A known fault of the MFA policy: a stable code, what goes wrong, how to fix it."""

    code: str
    problem: str
    fix: str


def _fault_password_policy_resource(doc: Mapping[str, Any]) -> PolicyFault | None:
    grants = _allows(doc, "iam:GetAccountPasswordPolicy")
    if not grants or any("*" in _as_list(s.get("Resource")) for s in grants):
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
    for statement in _statements(doc):
        for resource in _as_list(statement.get("Resource")):
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


_CHECKS = (
    _fault_password_policy_resource,
    _fault_password_policy_blocked,
    _fault_mfa_resource_by_username,
    _fault_list_users_exposed,
    _fault_deny_uses_bool,
    _fault_no_deny_without_mfa,
    _fault_change_password_blocked,
)


def find_faults(doc: Mapping[str, Any] | str) -> list[PolicyFault]:
    """The known faults of an MFA-enforcing policy (DESIGN §6) found in `doc`, in fixed order."""
    parsed = parse_policy(doc)
    return [fault for check in _CHECKS if (fault := check(parsed)) is not None]


# -- drift ----------------------------------------------------------------------------------

_ACTION_KEYS = ("Action", "NotAction")
_LIST_KEYS = ("Resource", "NotResource")


def _canonical_condition(condition: Any) -> Any:
    if not isinstance(condition, Mapping):
        return condition
    result: dict[str, Any] = {}
    for operator, block in condition.items():
        if isinstance(block, Mapping):
            # Condition keys are case-insensitive; values compare as text ("true" == True).
            result[str(operator)] = {
                str(key).lower(): sorted(
                    {str(v).lower() if isinstance(v, bool) else str(v) for v in _as_list(value)}
                )
                for key, value in block.items()
            }
        else:
            result[str(operator)] = block
    return result


def _canonical_statement(statement: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in statement.items():
        if key in _ACTION_KEYS:
            result[key] = sorted({str(a).lower() for a in _as_list(value)})
        elif key in _LIST_KEYS:
            result[key] = sorted({str(r) for r in _as_list(value)})
        elif key == "Condition":
            result[key] = _canonical_condition(value)
        elif key == "Effect":
            result[key] = str(value).capitalize()
        else:
            result[key] = value
    return result


def _key(canonical: Mapping[str, Any]) -> str:
    return json.dumps(canonical, sort_keys=True)


def _canonical_document(
    doc: Mapping[str, Any] | str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    parsed = parse_policy(doc)
    statements = sorted((_canonical_statement(s) for s in _statements(parsed)), key=_key)
    top = {k: v for k, v in parsed.items() if k != "Statement"}
    return top, statements


def documents_equal(a: Mapping[str, Any] | str, b: Mapping[str, Any] | str) -> bool:
    """Whether two policies say the same, ignoring order and one-element-list-vs-string forms."""
    return _canonical_document(a) == _canonical_document(b)


def _name(statement: Mapping[str, Any], spelling: Mapping[str, str]) -> str:
    if statement.get("Sid"):
        return f"statement {statement['Sid']}"
    actions = [spelling.get(a, a) for a in statement.get("Action", [])] or [
        f"not {spelling.get(a, a)}" for a in statement.get("NotAction", [])
    ]
    return f"unnamed {statement.get('Effect', '?')} statement for {', '.join(actions) or '?'}"


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _statement_differences(
    live: Mapping[str, Any], desired: Mapping[str, Any], spelling: Mapping[str, str]
) -> list[str]:
    lines: list[str] = []
    name = _name(desired, spelling)
    for key in sorted(set(live) | set(desired), key=str):
        have, want = live.get(key), desired.get(key)
        if have == want:
            continue
        if key in _ACTION_KEYS + _LIST_KEYS and isinstance(have, list) and isinstance(want, list):
            missing = [spelling.get(x, x) for x in want if x not in have]
            extra = [spelling.get(x, x) for x in have if x not in want]
            if missing:
                lines.append(f"{name}: {key} lacks {', '.join(missing)}")
            if extra:
                lines.append(f"{name}: {key} also has {', '.join(extra)}")
        elif have is None:
            lines.append(f"{name}: {key} is missing (should be {_compact(want)})")
        elif want is None:
            lines.append(f"{name}: has {key} {_compact(have)} (should have none)")
        else:
            lines.append(f"{name}: {key} is {_compact(have)} (should be {_compact(want)})")
    return lines


def policy_drift(live: Mapping[str, Any] | str, desired: Mapping[str, Any] | str) -> list[str]:
    """Plain-sentence differences from `desired` to `live`; empty when they say the same."""
    live_top, live_statements = _canonical_document(live)
    want_top, want_statements = _canonical_document(desired)
    # Actions compare case-insensitively but are reported as written (the desired spelling wins).
    spelling = {
        a.lower(): a
        for doc in (live, desired)
        for statement in _statements(parse_policy(doc))
        for key in _ACTION_KEYS
        for a in map(str, _as_list(statement.get(key)))
    }
    lines: list[str] = []
    for key in sorted(set(live_top) | set(want_top), key=str):
        if live_top.get(key) != want_top.get(key):
            lines.append(
                f"{key} is {_compact(live_top.get(key))} (should be {_compact(want_top.get(key))})"
            )

    # Identical statements cancel out whatever their order; the rest pair up by Sid.
    unmatched_live = list(live_statements)
    unmatched_want: list[dict[str, Any]] = []
    for statement in want_statements:
        if statement in unmatched_live:
            unmatched_live.remove(statement)
        else:
            unmatched_want.append(statement)
    for statement in unmatched_want:
        twin = next(
            (
                s
                for s in unmatched_live
                if statement.get("Sid") and s.get("Sid") == statement["Sid"]
            ),
            None,
        )
        if twin is None:
            lines.append(f"{_name(statement, spelling)} is missing")
        else:
            unmatched_live.remove(twin)
            lines.extend(_statement_differences(twin, statement, spelling))
    lines.extend(f"{_name(s, spelling)} is not in the portal's version" for s in unmatched_live)
    return lines

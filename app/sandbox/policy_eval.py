"""Identity-based IAM policy evaluation in one account, as AWS's IAM guide describes it.

Pure functions over parsed policy documents and a request context; no moto, no I/O.

- "Policy evaluation logic" (reference_policies_evaluation-logic.html): an explicit Deny in
  any policy wins; otherwise an Allow is needed; otherwise the request is implicitly denied.
- "IAM JSON policy elements: Condition operators"
  (reference_policies_elements_condition_operators.html): a key absent from the request makes
  a condition false, except negated operators (true), ...IfExists (true) and Null.
- "Multivalued context keys" (reference_policies_condition-single-vs-multi-valued-context-keys):
  ForAllValues: is true when the key is absent or every value matches; ForAnyValue: needs one.
- "Policy variables" (reference_policies_variables.html): ${aws:username}, ${key, 'default'},
  and the escapes ${*}, ${?}, ${$}.

Anything this module does not know (an operator, a condition key, a malformed statement)
denies the request and logs which: a sandbox that allowed it would hide a policy bug.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("iam_onboard.sandbox.policy")

# Keys the evaluator knows: a condition on another key denies (see module doc).
KNOWN_KEYS = frozenset(
    {
        "aws:multifactorauthpresent",
        "aws:multifactorauthage",
        "aws:username",
        "aws:userid",
        "aws:principalarn",
        "aws:principalaccount",
        "aws:principaltype",
        "aws:tagkeys",
        "iam:policyarn",
    }
)
KNOWN_KEY_PREFIXES = ("aws:resourcetag/", "iam:resourcetag/", "aws:requesttag/")

Compare = Callable[[str, str], bool]
STRING_OPERATORS: dict[str, tuple[Compare, bool]] = {
    # name: (compare(policy_value, context_value) -> bool, negated)
    "StringEquals": (lambda p, c: p == c, False),
    "StringNotEquals": (lambda p, c: p == c, True),
    "StringEqualsIgnoreCase": (lambda p, c: p.lower() == c.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, c: p.lower() == c.lower(), True),
    "StringLike": (lambda p, c: wildcard_match(p, c), False),
    "StringNotLike": (lambda p, c: wildcard_match(p, c), True),
    "ArnEquals": (lambda p, c: arn_match(p, c), False),
    "ArnLike": (lambda p, c: arn_match(p, c), False),
    "ArnNotEquals": (lambda p, c: arn_match(p, c), True),
    "ArnNotLike": (lambda p, c: arn_match(p, c), True),
    "Bool": (lambda p, c: p.lower() == c.lower(), False),
}


class UnsupportedPolicy(Exception):
    """An operator, key or element the evaluator does not understand: the request is denied."""


@dataclass(frozen=True)
class Request:
    """What IAM evaluates: the action (`iam:ListUsers`), the resource ARN (or `*`), the keys.

    `context` maps lower-case condition keys to their values: a string for single-valued
    keys, a list for multivalued ones (aws:TagKeys). A key that is absent is not in the map.
    """

    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool = False
    reason: str = ""


def evaluate(policies: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """Explicit Deny anywhere wins, then any Allow, else implicit deny."""
    allowed = False
    try:
        for policy in policies:
            for statement in _statements(policy):
                if not _applies(statement, request):
                    continue
                effect = statement.get("Effect")
                if effect == "Deny":
                    sid = statement.get("Sid", "")
                    return Decision(False, True, f"explicit deny in statement {sid!r}")
                if effect != "Allow":
                    raise UnsupportedPolicy(f"Effect {effect!r}")
                allowed = True
    except UnsupportedPolicy as exc:
        log.warning("sandbox policy evaluation denies %s: unsupported %s", request.action, exc)
        return Decision(False, False, f"unsupported {exc}")
    if allowed:
        return Decision(True)
    return Decision(False, False, "no identity-based policy allows the action")


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Principal" in statement or "NotPrincipal" in statement:
        raise UnsupportedPolicy("Principal in an identity-based policy")
    if "Action" in statement:
        action_ok = any(_action_match(a, request.action) for a in _as_list(statement["Action"]))
    elif "NotAction" in statement:
        action_ok = not any(
            _action_match(a, request.action) for a in _as_list(statement["NotAction"])
        )
    else:
        raise UnsupportedPolicy("statement without Action or NotAction")
    if not action_ok:
        return False
    if "Resource" in statement:
        patterns = _as_list(statement["Resource"])
        resource_ok = any(_resource_match(p, request) for p in patterns)
    elif "NotResource" in statement:
        patterns = _as_list(statement["NotResource"])
        resource_ok = not any(_resource_match(p, request) for p in patterns)
    else:
        raise UnsupportedPolicy("statement without Resource or NotResource")
    return resource_ok and conditions_hold(statement.get("Condition", {}), request.context)


def _action_match(pattern: str, action: str) -> bool:
    # Action names are case-insensitive ("iam:listusers" is iam:ListUsers).
    return wildcard_match(pattern.lower(), action.lower())


def _resource_match(pattern: str, request: Request) -> bool:
    expanded = substitute_variables(pattern, request.context)
    if expanded is None:
        return False
    if expanded == "*":
        return True
    return request.resource != "*" and arn_match(expanded, request.resource)


# --- wildcards, ARNs, variables -------------------------------------------------------


def wildcard_match(pattern: str, value: str) -> bool:
    """`*` matches any run of characters (also none), `?` exactly one; case-sensitive."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def arn_match(pattern: str, arn: str) -> bool:
    """ArnLike: each of the six colon-separated parts matched on its own, with wildcards."""
    if pattern == "*":
        return True
    pattern_parts = pattern.split(":", 5)
    arn_parts = arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return False
    return all(wildcard_match(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


def substitute_variables(text: str, context: Mapping[str, str | Sequence[str]]) -> str | None:
    """Replace ${key} and ${key, 'default'}; None when a variable has no value (no match).

    The escapes ${*} ${?} ${$} become literal characters; a literal `*` from an escape is
    kept apart from wildcards by AWS, which this sandbox approximates by matching it as `*`.
    """
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        inner = match.group(1).strip()
        if inner in _ESCAPES:
            return _ESCAPES[inner]
        key, _, default = inner.partition(",")
        value = context.get(key.strip().lower())
        if isinstance(value, str):
            return value
        default = default.strip()
        if default.startswith("'") and default.endswith("'") and len(default) >= 2:
            return default[1:-1]
        missing = True
        return ""

    result = _VARIABLE.sub(replace, text)
    return None if missing else result


# --- conditions ---------------------------------------------------------------------------


def conditions_hold(
    condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str | Sequence[str]]
) -> bool:
    """Every operator block, and every key in it, must hold (AND); values of one key are OR."""
    for operator, keys in condition.items():
        for key, values in keys.items():
            if not _condition_holds(operator, key, _as_list(values), context):
                return False
    return True


def _check_key(key: str) -> str:
    lowered = key.lower()
    if lowered in KNOWN_KEYS or lowered.startswith(KNOWN_KEY_PREFIXES):
        return lowered
    raise UnsupportedPolicy(f"condition key {key!r}")


def _condition_holds(
    operator: str, key: str, policy_values: list[str], context: Mapping[str, Any]
) -> bool:
    lowered = _check_key(key)
    present = lowered in context
    raw = context.get(lowered)
    context_values: list[str] = [] if raw is None else _as_list(raw)

    if operator == "Null":
        wants_absent = [v.lower() == "true" for v in policy_values]
        return any(w == (not present) for w in wants_absent)

    set_op, _, base = operator.rpartition(":")
    if set_op not in ("", "ForAllValues", "ForAnyValue"):
        raise UnsupportedPolicy(f"condition operator {operator!r}")
    if_exists = base.endswith("IfExists")
    name = base.removesuffix("IfExists")
    if name not in STRING_OPERATORS:
        raise UnsupportedPolicy(f"condition operator {operator!r}")
    compare, negated = STRING_OPERATORS[name]

    expanded = [substitute_variables(v, context) for v in policy_values]
    values = [v for v in expanded if v is not None]

    def matches(context_value: str) -> bool:
        hit = any(compare(v, context_value) for v in values)
        return not hit if negated else hit

    if set_op == "ForAllValues":
        return all(matches(c) for c in context_values)  # absent or empty: true
    if set_op == "ForAnyValue":
        return any(matches(c) for c in context_values)  # absent: false
    if not present:
        return if_exists or negated
    if negated:
        return all(matches(c) for c in context_values)
    return any(matches(c) for c in context_values)

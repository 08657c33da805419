"""IAM policy documents as data: rendering, parsing, and drift between two versions.

Pure functions only (no boto3): the gateway fetches documents, this module and
app/aws/policy_faults.py judge them; app/aws/policy_documents.py builds the portal's own.
Policy grammar handled here: `Statement` may be one object or a list; `Action`, `NotAction`,
`Resource` and condition values may be one string or a list; action names are case-insensitive
and may hold `*` and `?` wildcards.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from app.aws.policy_documents import PolicyDocument, mfa_policy

# Managed policy documents: at most 6,144 characters, whitespace not counted.
POLICY_SIZE_LIMIT = 6144


# -- loading and rendering ------------------------------------------------------------------


def mfa_policy_document() -> PolicyDocument:
    """The MFA policy the portal installs on its group (docs/mfa-policy.md), as a fresh dict."""
    return mfa_policy()


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


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def policy_statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, Mapping)]


def policy_actions(doc: Mapping[str, Any] | str) -> set[str]:
    """Every action named in an `Action` element of the document, as written."""
    return {
        str(action)
        for statement in policy_statements(parse_policy(doc))
        for action in as_list(statement.get("Action"))
    }


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
                    {str(v).lower() if isinstance(v, bool) else str(v) for v in as_list(value)}
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
            result[key] = sorted({str(a).lower() for a in as_list(value)})
        elif key in _LIST_KEYS:
            result[key] = sorted({str(r) for r in as_list(value)})
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
    statements = sorted((_canonical_statement(s) for s in policy_statements(parsed)), key=_key)
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
        for statement in policy_statements(parse_policy(doc))
        for key in _ACTION_KEYS
        for a in map(str, as_list(statement.get(key)))
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

"""Schemathesis against the portal's own /openapi.json: no 5xx, answers that match the schema.

Every operation is called with a valid API token and generated data, valid and invalid (bounded:
the whole run takes well under two minutes); the sandbox AWS answers the calls that get past
validation. Generated names rarely hit a real user, so a second pass calls every operation with
real users too: the success answers are checked against the schema as well.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from app.main import create_app
from app.services.api_tokens import SCOPES, create_api_token
from app.services.invitations import invite_user
from app.services.portal import CLI_ACTOR, Portal

EXAMPLES = 25

# Real data for the second pass: (method, path, path parameters, query, body) -> the status due.
KNOWN_GOOD: list[tuple[str, str, dict[str, str], dict[str, Any], Any, int]] = [
    (
        "POST",
        "/api/v1/invitations",
        {},
        {},
        {"user_name": "ines", "email": "ines@example.com"},
        201,
    ),
    ("GET", "/api/v1/users", {}, {"status": "invited", "per_page": 1}, None, 200),
    ("GET", "/api/v1/users/{name}", {"name": "ines"}, {}, None, 200),
    ("POST", "/api/v1/users/{name}/resend", {"name": "ines"}, {}, None, 200),
    ("POST", "/api/v1/users/{name}/reset-mfa", {"name": "ines"}, {}, {"email": None}, 200),
    ("POST", "/api/v1/users/{name}/revoke", {"name": "rosa"}, {}, {"delete_user": True}, 200),
    ("POST", "/api/v1/users/{name}/resend", {"name": "rosa"}, {}, None, 409),
    # walt exists in IAM, made outside the portal, with nothing it could not be granted.
    ("POST", "/api/v1/users/{name}/send-link", {"name": "walt"}, {}, {"email": "w@x.io"}, 200),
    ("DELETE", "/api/v1/users/{name}", {"name": "ines"}, {}, None, 200),
    ("GET", "/api/v1/users/{name}", {"name": "nobody"}, {}, None, 404),
]


def _failure(exc: BaseException) -> bool:
    return isinstance(exc, Exception | BaseExceptionGroup)


def test_every_operation_answers_within_its_schema(portal: Portal) -> None:
    # Imported here, not at the top: schemathesis and hypothesis take ~1.5 s to import, which
    # every xdist worker would pay collecting the suite, this test selected or not.
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
        content_type_conformance,
    ]
    # Every scope: the operations themselves are under test (scopes: the authz matrix).
    token = create_api_token(portal, name="schemathesis", scopes=list(SCOPES))
    bearer = {"Authorization": f"Bearer {token}"}
    invite_user(portal, user_name="rosa", email="rosa@example.com", actor=CLI_ACTOR)
    portal.iam().create_user("walt", tags={})
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(portal))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7  # the API as documented: invitations, users, lifecycle
    seen: dict[str, set[int]] = defaultdict(set)
    failures: list[str] = []

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,  # the same cases on every run: a failure reproduces
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: schemathesis.Case) -> None:
                response = case.call_and_validate(headers=bearer, checks=checks)
                seen[case.operation.label].add(response.status_code)

            try:
                call()
            except BaseException as exc:
                if not _failure(exc):
                    raise
                failures.append(f"{operation.label} ({mode.value}): {exc}")

    by_label = {op.label: op for op in operations}
    for method, path, path_parameters, query, body, status in KNOWN_GOOD:
        operation = by_label[f"{method} {path}"]
        kwargs: dict[str, Any] = {"path_parameters": path_parameters, "query": query}
        if body is not None:
            kwargs.update(body=body, media_type="application/json")
        case = operation.Case(**kwargs)
        try:
            response = case.call_and_validate(headers=bearer, checks=checks)
        except BaseException as exc:
            if not _failure(exc):
                raise
            failures.append(f"{method} {path} {path_parameters}: {exc}")
            continue
        seen[operation.label].add(response.status_code)
        if response.status_code != status:
            failures.append(f"{method} {path} {path_parameters}: {response.status_code} {status}")

    assert not failures, "\n\n".join(failures)
    # Every operation answered with success at least once, and with errors too.
    for operation in operations:
        statuses = seen[operation.label]
        assert any(200 <= s < 300 for s in statuses), (operation.label, statuses)
        assert any(400 <= s < 500 for s in statuses), (operation.label, statuses)

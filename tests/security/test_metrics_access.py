"""/metrics from an attacker's side: absent unless configured, and only for the right Bearer token.

A scrape shows how many people enrolled, which calls failed and how often: counts an outsider
should not read. The page exists only when IAM_ONBOARD_METRICS_TOKEN is set, and answers only
`Authorization: Bearer <that token>` (compared in constant time; never a token in the URL).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.portal import Portal
from tests.conftest import METRICS_TOKEN

TOKEN = METRICS_TOKEN  # the `metered` portal's (tests/conftest.py)


def test_without_the_token_setting_there_is_no_metrics_page(portal: Portal):
    with TestClient(create_app(portal)) as client:
        r = client.get("/metrics", headers={"Authorization": "Bearer anything-at-all-really"})
        assert r.status_code == 404
        assert "iam_onboard" not in r.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},  # all but the last character
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
    ids=["none", "wrong", "prefix", "basic", "no-scheme"],
)
def test_metrics_answer_only_the_right_bearer_token(metered: Portal, headers: dict[str, str]):
    with TestClient(create_app(metered)) as client:
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "iam_onboard" not in r.text
        assert client.get(f"/metrics?token={TOKEN}").status_code == 401  # never from the URL
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and "iam_onboard_iam_calls_total" in ok.text

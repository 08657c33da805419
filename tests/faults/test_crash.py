"""The server killed (SIGKILL) after CreateUser and before AddUserToGroup, then restarted."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.sandbox import Sandbox
from app.services.api_tokens import create_api_token
from app.services.bootstrap import bootstrap
from app.services.portal import CLI_ACTOR
from app.store.db import Database
from app.store.models import Invitation
from tests.conftest import make_portal
from tests.faultproxy import HOLD, FaultProxy
from tests.faults.conftest import groups_of, users
from tests.faults.server import running_server, server_env
from tests.helpers import CLI, free_port

ALICE = {"user_name": "alice", "email": "alice@example.com"}


def _invitations(database_url: str) -> list[Invitation]:
    db = Database(database_url)
    try:
        with db.session() as s:
            return list(s.scalars(select(Invitation)))
    finally:
        db.dispose()


@pytest.mark.parametrize("recovery", ["housekeeping", "invite again"])
def test_an_invite_cut_short_by_a_killed_server_is_finished_after_the_restart(
    aws: Sandbox, tmp_path: Path, iam_client: Any, recovery: str
):
    database_url = f"sqlite:///{tmp_path}/portal.db"
    setup = make_portal(aws, database_url)
    bootstrap(setup, dry_run=False, actor=CLI_ACTOR)
    headers = {"Authorization": f"Bearer {create_api_token(setup, name='hr')}"}
    setup.db.dispose()
    proxy = FaultProxy(aws.url)
    port = free_port()
    where = {
        "database_url": database_url,
        "iam_url": proxy.url,
        "port": port,
        "log": tmp_path / "server.log",
    }
    try:
        proxy.inject(HOLD, action="AddUserToGroup")
        with running_server(**where) as server:
            answers: list[Any] = []

            def post() -> None:
                try:
                    answers.append(
                        httpx.post(
                            server.url + "/api/v1/invitations",
                            json=ALICE,
                            headers=headers,
                            timeout=60,
                        )
                    )
                except httpx.HTTPError as exc:
                    answers.append(exc)

            poster = threading.Thread(target=post, daemon=True)
            poster.start()
            assert proxy.held.wait(30), "AddUserToGroup never reached IAM:\n" + server.output()
            # CreateUser was answered; AddUserToGroup is on its way when the power goes.
            assert proxy.calls == ["CreateUser", "AddUserToGroup"]
            server.kill()
        proxy.clear()
        poster.join(10)
        assert answers and isinstance(answers[0], httpx.HTTPError)  # no answer came
        assert users(iam_client) == ["alice"]
        assert groups_of(iam_client, "alice") == set()  # outside the MFA group, for now
        assert [i.status for i in _invitations(database_url)] == ["creating"]

        with running_server(**where) as server:
            env = server_env(database_url=database_url, iam_url=proxy.url, base_url=server.url)
            if recovery == "housekeeping":
                done = subprocess.run(
                    [*CLI, "housekeeping"],
                    env={**env, "IAM_ONBOARD_STUCK_INVITE_MINUTES": "0"},
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert done.returncode == 0, done.stdout + done.stderr
                assert groups_of(iam_client, "alice") == {"MFA"}
                # Without mail nobody saw a link: the admin resends to get one.
                sent = subprocess.run(
                    [*CLI, "resend", "alice"], env=env, capture_output=True, text=True, timeout=60
                )
                assert sent.returncode == 0, sent.stdout + sent.stderr
                found = re.search(r"http://\S+/enroll/\S+", sent.stdout)
                assert found, sent.stdout
                link = found.group(0)
            else:
                again = httpx.post(
                    server.url + "/api/v1/invitations", json=ALICE, headers=headers, timeout=60
                )
                assert again.status_code == 201, again.text
                link = again.json()["link"]
            landing = httpx.get(link, timeout=30)
            assert landing.status_code == 200, landing.text
            assert "<code>alice</code>" in landing.text
    finally:
        proxy.stop()
    assert users(iam_client) == ["alice"]
    assert groups_of(iam_client, "alice") == {"MFA"}
    assert [i.status for i in _invitations(database_url)] == ["pending"]

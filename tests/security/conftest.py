"""The attack-matrix tests share one portal per module (see world.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.sandbox import Sandbox
from tests.security.world import World, build_world


@pytest.fixture(scope="module")
def world(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = tmp_path_factory.mktemp("world") / "portal.db"
    with build_world(sandbox, f"sqlite:///{db}") as built:
        yield built

"""Shared fixtures: the sandbox over real HTTP, a fresh database per test, named personas."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import load_settings
from app.sandbox import Sandbox, start_sandbox
from app.services.bootstrap import bootstrap
from app.services.portal import CLI_ACTOR, Portal, build_portal
from app.store.db import Database
from tests.oidc_support import OidcProvider, start_oidc_provider

POSTGRES_URL = os.environ.get("IAM_ONBOARD_TEST_POSTGRES_URL")
# CI sets this: there a skipped test is a failure, never a silent pass.
NO_SKIPS = os.environ.get("IAM_ONBOARD_TEST_NO_SKIPS") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip locally with one clear line; fail in CI, where every part must be present."""
    if NO_SKIPS:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


TEST_SECRET = "test-secret-" + "x" * 40

# `make test-fast` leaves these out (pyproject.toml registers the markers): whole directories,
# the scanners and the upgrade test, and every test that starts `iam-onboard demo` (a fixture
# named demo) or a CLI process: each start costs seconds of imports on a busy machine.
TESTS = Path(__file__).resolve().parent
MARK_BY_DIRECTORY = {"browser": "browser", "faults": "faults", "load": "slow", "replicas": "slow"}
SLOW_FILES = {"test_wapiti.py", "test_schemathesis.py", "test_rolling_upgrade.py"}


# Under pytest-xdist (`make test`, `make test-fast`: -n auto --dist loadfile) each worker sorts
# its tests so that the slow ones start first: no long test is left to end the run alone.
FIRST_MARKS = ("slow", "browser", "faults")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path).resolve()
        directory = path.relative_to(TESTS).parts[0] if TESTS in path.parents else ""
        if mark := MARK_BY_DIRECTORY.get(directory):
            item.add_marker(mark)
        if path.name in SLOW_FILES or "demo" in getattr(item, "fixturenames", ()):
            item.add_marker("slow")
    if hasattr(config, "workerinput"):  # an xdist worker
        items.sort(key=_start_order)


def _start_order(item: pytest.Item) -> int:
    for rank, mark in enumerate(FIRST_MARKS):
        if item.get_closest_marker(mark):
            return rank
    return len(FIRST_MARKS)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = start_sandbox()
    yield box
    box.stop()


@pytest.fixture
def aws(sandbox: Sandbox) -> Sandbox:
    """The sandbox, wiped clean for this test."""
    sandbox.reset()
    return sandbox


def _postgres_database() -> Iterator[str]:
    """A database of its own on the test PostgreSQL server, dropped afterwards."""
    assert POSTGRES_URL
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/portal.db"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not POSTGRES_URL:
        skip_or_fail("IAM_ONBOARD_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    yield from _postgres_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs on SQLite always, and on PostgreSQL when a URL is given."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/portal.db"
        return
    if not POSTGRES_URL:
        skip_or_fail("IAM_ONBOARD_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    yield from _postgres_database()


def make_portal(
    sandbox: Sandbox, database_url: str, *, endpoint: str | None = None, **overrides: object
) -> Portal:
    """A portal on the sandbox; `endpoint` puts something (a proxy) in between."""
    # No background housekeeping thread in tests unless a test asks for one.
    overrides.setdefault("housekeeping_interval_seconds", 0)
    _copy_migrated_sqlite(database_url)
    overrides.setdefault("base_url", "http://portal.test")
    settings = load_settings(secret_key=TEST_SECRET, database_url=database_url, **overrides)
    return build_portal(settings, endpoint=endpoint or sandbox.url)


_migrated: list[Path] = []


def _copy_migrated_sqlite(database_url: str) -> None:
    """A new SQLite file starts as a copy of one migrated once per process: the migrations
    cost ~0.3 s of CPU per portal. build_portal still calls migrate(), which finds the head
    revision. The migrations themselves run from nothing in test_store.py and
    test_migrations_head.py, and from the previous release in test_rolling_upgrade.py."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    target = Path(url.database)
    if target.exists() or not target.parent.is_dir():
        return
    if not _migrated:
        template = Path(tempfile.mkdtemp(prefix="iam-onboard-template-")) / "portal.db"
        atexit.register(shutil.rmtree, template.parent, ignore_errors=True)
        db = Database(f"sqlite:///{template}")
        db.migrate()
        db.dispose()  # the last connection to close checkpoints the WAL into the file
        _migrated.append(template)
    shutil.copyfile(_migrated[0], target)


@pytest.fixture
def portal(aws: Sandbox, sqlite_url: str) -> Iterator[Portal]:
    """A bootstrapped sandbox account and a fresh SQLite database."""
    p = make_portal(aws, sqlite_url, assignable_groups=["Developers", "ReadOnly"])
    bootstrap(p, dry_run=False, actor=CLI_ACTOR)
    iam = p.iam()
    for group in ("Developers", "ReadOnly"):
        iam.create_group(group)
    yield p
    p.db.dispose()


METRICS_TOKEN = "metrics-scraper-token-0123456789"


@pytest.fixture
def metered(aws: Sandbox, sqlite_url: str) -> Iterator[Portal]:
    """A bootstrapped portal whose /metrics answers the bearer METRICS_TOKEN."""
    p = make_portal(aws, sqlite_url, metrics_token=METRICS_TOKEN)
    bootstrap(p, dry_run=False, actor=CLI_ACTOR)
    yield p
    p.db.dispose()


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """panva's oidc-provider (tests/oidc) on a free loopback port for the whole session."""
    provider = start_oidc_provider(skip_or_fail)
    yield provider
    provider.stop()


@pytest.fixture
def iam_client(aws: Sandbox):  # type: ignore[no-untyped-def]
    """A plain boto3 client on the sandbox: what an operator's AWS CLI would see."""
    import boto3

    return boto3.client(
        "iam",
        endpoint_url=aws.url,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )

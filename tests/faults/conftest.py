"""The fault suite's fixtures: one sandbox, one proxy in front of it, a fresh portal per case."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from app.aws.client import client_config
from app.aws.policies import mfa_policy_document, render_policy
from app.config import Settings, load_settings
from app.sandbox import SANDBOX_CREDENTIALS, Sandbox
from app.services.portal import Portal
from app.store.db import Database
from tests.conftest import TEST_SECRET
from tests.faultproxy import DROP_AFTER, DROP_BEFORE, SLOW, FaultProxy

# Every fault the proxy can inject, as AWS or the network produces it.
FAULTS = (
    "Throttling",
    "ServiceFailure",
    DROP_BEFORE,
    DROP_AFTER,
    SLOW,
    "EntityTemporarilyUnmodifiable",
    "ConcurrentModification",
)
# botocore's standard mode retries these: injected once, a person never notices.
RETRIED = {"Throttling", "ServiceFailure", DROP_BEFORE, DROP_AFTER, SLOW}
# A read changes nothing, so a lost answer (drop-after, slow) is the same case as a refused
# request, and AWS returns EntityTemporarilyUnmodifiable / ConcurrentModification to writes only.
READ_FAULTS = ("Throttling", "ServiceFailure", DROP_BEFORE)
# Once, only two kinds take a path of their own: Throttling stands for the faults botocore
# retries before IAM acted (ServiceFailure and drop-before take the same path), drop-after for
# those it retries after IAM acted (slow takes the same path: a timeout, not a reset). The 409s
# are not retried, so once is the same case as always: one failure, then the person retries.
ONCE_FAULTS = ("Throttling", DROP_AFTER)

READ_TIMEOUT = 0.5  # seconds (a sandbox call takes ~10 ms); SLOW answers after 2 s
SLOW_SECONDS = 2.0
DEFAULT_READ_TIMEOUT = Settings.model_fields["aws_read_timeout"].default

# What a person must never be shown: traceback text, botocore's class names, raw AWS codes.
_TECHNICAL = re.compile(
    r"Traceback|File \"|botocore|boto3|urllib3|ClientError|ReadTimeout|ConnectionClosed"
    r"|EndpointConnection|ConnectTimeout|\w+Exception\b|\w+Error\(|<ErrorResponse"
    r"|EntityTemporarilyUnmodifiable|ConcurrentModification|ServiceFailure|\bThrottling\b"
)


def matrix(*, writes: list[str], reads: list[str]) -> list[Any]:
    """(operation, fault, mode) cases: every fault on every write; one fault on every read."""
    cases = []
    for op in writes:
        for fault in FAULTS:
            cases.append(pytest.param(op, fault, "always", id=f"{op}-{fault}-always"))
        for fault in ONCE_FAULTS:
            cases.append(pytest.param(op, fault, "once", id=f"{op}-{fault}-once"))
    # A failed read stops the operation before, or between, its writes whatever the kind of
    # fault (they differ only inside botocore), so the kinds take turns over the reads.
    for index, op in enumerate(reads):
        fault = READ_FAULTS[index % len(READ_FAULTS)]
        cases.append(pytest.param(op, fault, "always", id=f"{op}-{fault}-always"))
    return cases


def inject(proxy: FaultProxy, op: str, fault: str, mode: str) -> None:
    proxy.inject(fault, action=op, times=1 if mode == "once" else None)


def assert_plain(message: str) -> None:
    """A sentence a person can read: no traceback, no botocore class or AWS error code."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", message))
    assert text.strip(), "an empty error message"
    found = _TECHNICAL.search(text)
    assert found is None, f"technical text {found.group(0)!r} shown to a person: {text[:400]}"


def fast_backoff(portal: Portal) -> None:
    """Shrink botocore's retry pauses on this portal's clients only; attempts stay as they are.

    Throttling backs off 0.5 s on average per retry; over a few hundred cases that is minutes.
    """
    for client in portal.iam_clients:
        emitter = client.meta.events._emitter
        service = client.meta.service_model.service_id.hyphenize()
        handler = emitter._unique_id_handlers[f"retry-config-{service}"]["handler"]
        handler.__self__._retry_policy._retry_backoff._random = lambda: 0.02


@pytest.fixture(scope="session")
def proxy(sandbox: Sandbox) -> Iterator[FaultProxy]:
    p = FaultProxy(sandbox.url, slow_seconds=SLOW_SECONDS)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each case (running the migrations costs ~0.3 s)."""
    path = tmp_path_factory.mktemp("template") / "portal.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def boto_session() -> Any:
    """One boto3 session for every case: the IAM service model is loaded once, not per client."""
    return boto3.session.Session(**SANDBOX_CREDENTIALS)


def fault_portal(
    proxy: FaultProxy,
    template_db: Path,
    tmp_path: Path,
    boto_session: Any,
    direct: Any,
    read_timeout: float = READ_TIMEOUT,
) -> Portal:
    """A portal on a bootstrapped account whose IAM calls all pass through the proxy."""
    db_file = tmp_path / "portal.db"
    shutil.copy(template_db, db_file)
    settings = load_settings(
        secret_key=TEST_SECRET,
        database_url=f"sqlite:///{db_file}",
        base_url="http://portal.test",
        housekeeping_interval_seconds=0,
        assignable_groups=["Developers"],
        aws_read_timeout=read_timeout,
        aws_max_attempts=3,
    )
    # The portal's own timeouts and retries, but botocore's "standard" mode rather than the
    # portal's "adaptive": the proxy throttles by pattern (every third call, or every call),
    # which adaptive's client-side limiter reads as an account over its rate and answers by
    # slowing every call to 0.5 a second. Pacing against a rate is tested on the sandbox's
    # account-wide bucket (test_realistic_iam.py); here the retries themselves are.
    config = client_config(settings).merge(
        Config(retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts})
    )
    clients = tuple(
        boto_session.client(name, endpoint_url=proxy.url, config=config) for name in ("iam", "sts")
    )
    portal = Portal(settings=settings, db=Database(settings.database_url), iam_clients=clients)
    fast_backoff(portal)
    # What `iam-onboard bootstrap` makes, written straight to the sandbox (bootstrap is not
    # under test here, and going through the proxy costs time in every case).
    arn = direct.create_policy(
        PolicyName=settings.mfa_policy, PolicyDocument=render_policy(mfa_policy_document())
    )["Policy"]["Arn"]
    direct.create_group(GroupName=settings.mfa_group)
    direct.attach_group_policy(GroupName=settings.mfa_group, PolicyArn=arn)
    direct.create_group(GroupName="Developers")
    return portal


@pytest.fixture(scope="session")
def direct(sandbox: Sandbox, boto_session: Any) -> Any:
    """An IAM client straight on the sandbox, for setting the stage without the proxy."""
    return boto_session.client("iam", endpoint_url=sandbox.url, region_name="us-east-1")


@pytest.fixture
def fportal(
    aws: Sandbox,
    proxy: FaultProxy,
    template_db: Path,
    tmp_path: Path,
    boto_session: Any,
    direct: Any,
) -> Iterator[Portal]:
    proxy.reset()
    portal = fault_portal(proxy, template_db, tmp_path, boto_session, direct)
    portal.clock = aws.now  # a test may move it on with aws.advance_clock
    yield portal
    proxy.reset()
    portal.db.dispose()


@pytest.fixture
def calm_portal(
    aws: Sandbox,
    proxy: FaultProxy,
    template_db: Path,
    tmp_path: Path,
    boto_session: Any,
    direct: Any,
) -> Iterator[Portal]:
    """Like fportal with the usual read timeout: where calls are counted exactly, a busy
    machine's slow answer must not turn into a retry."""
    proxy.reset()
    portal = fault_portal(
        proxy, template_db, tmp_path, boto_session, direct, read_timeout=DEFAULT_READ_TIMEOUT
    )
    portal.clock = aws.now
    yield portal
    proxy.reset()
    portal.db.dispose()


# -- what an operator's AWS CLI would see ------------------------------------------------------
def users(iam_client: Any) -> list[str]:
    pages = iam_client.get_paginator("list_users").paginate()
    return sorted(u["UserName"] for page in pages for u in page["Users"])


def groups_of(iam_client: Any, user: str) -> set[str]:
    return {g["GroupName"] for g in iam_client.list_groups_for_user(UserName=user)["Groups"]}


def group_members(iam_client: Any, group: str) -> set[str]:
    pages = iam_client.get_paginator("get_group").paginate(GroupName=group)
    return {u["UserName"] for page in pages for u in page["Users"]}


def unassigned_devices(iam_client: Any) -> list[str]:
    pages = iam_client.get_paginator("list_virtual_mfa_devices").paginate(
        AssignmentStatus="Unassigned"
    )
    return [d["SerialNumber"] for page in pages for d in page["VirtualMFADevices"]]


def all_devices(iam_client: Any) -> list[str]:
    pages = iam_client.get_paginator("list_virtual_mfa_devices").paginate(AssignmentStatus="Any")
    return [d["SerialNumber"] for page in pages for d in page["VirtualMFADevices"]]


def mfa_devices_of(iam_client: Any, user: str) -> list[str]:
    return [d["SerialNumber"] for d in iam_client.list_mfa_devices(UserName=user)["MFADevices"]]


def has_login_profile(iam_client: Any, user: str) -> bool:
    try:
        iam_client.get_login_profile(UserName=user)
    except iam_client.exceptions.NoSuchEntityException:
        return False
    return True


def user_tags(iam_client: Any, user: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in iam_client.list_user_tags(UserName=user)["Tags"]}

"""The one place that builds boto3 clients: explicit timeouts, standard retries, endpoints."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from app.config import Settings

# At DEBUG these loggers write whole request and response bodies: MFA codes, the temporary
# password, the seed. Pinned at INFO so that no log level set elsewhere can leak them.
for _name in ("botocore.endpoint", "botocore.parsers", "botocore.hooks", "urllib3.connectionpool"):
    logging.getLogger(_name).setLevel(logging.INFO)

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# The embedded sandbox accepts any keys; these are used only when the endpoint is on loopback
# and nothing else provides credentials, so `AWS_ENDPOINT_URL_IAM=<sandbox>` is enough.
_SANDBOX_KEYS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


def iam_endpoint(settings: Settings) -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_IAM") or os.environ.get("AWS_ENDPOINT_URL") or None


def is_loopback(url: str | None) -> bool:
    return bool(url) and (urlsplit(url).hostname or "") in _LOOPBACK


def client_config(settings: Settings) -> Config:
    # botocore's default is still "legacy" (5 attempts, no jitter cap). "adaptive" is "standard"
    # (Throttling, 5xx and connection errors retried with capped, jittered exponential backoff)
    # plus a client-side token bucket that learns the rate IAM allows from its Throttling
    # answers and then holds every call of the client to it. IAM throttles per account,
    # whoever calls, so the portal's bulk work (many API invitations at once, housekeeping,
    # offboarding many users) slows down to the account's pace instead of failing. The pacing
    # is per client: build_portal makes one pair, shared by every request thread.
    return Config(
        region_name=settings.aws_region,
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        retries={"mode": "adaptive", "total_max_attempts": settings.aws_max_attempts},
    )


def _session(
    endpoint: str | None, credentials: Mapping[str, str] | None = None
) -> boto3.session.Session:
    if credentials:
        return boto3.session.Session(
            aws_access_key_id=credentials["aws_access_key_id"],
            aws_secret_access_key=credentials["aws_secret_access_key"],
        )
    session = boto3.session.Session()
    if is_loopback(endpoint) and session.get_credentials() is None:
        session = boto3.session.Session(
            aws_access_key_id=_SANDBOX_KEYS["aws_access_key_id"],
            aws_secret_access_key=_SANDBOX_KEYS["aws_secret_access_key"],
        )
    return session


def make_clients(
    settings: Settings,
    *,
    endpoint: str | None = None,
    credentials: Mapping[str, str] | None = None,
) -> tuple[Any, Any]:
    """Build the IAM and STS clients; `endpoint` overrides AWS_ENDPOINT_URL_IAM.

    `credentials` (aws_access_key_id, aws_secret_access_key) replace the usual AWS chain:
    the demo's identities in the sandbox's enforcement mode.
    """
    endpoint = endpoint or iam_endpoint(settings)
    session = _session(endpoint, credentials)
    config = client_config(settings)
    iam = session.client("iam", endpoint_url=endpoint, config=config)
    # The sandbox serves STS on the same port; real AWS has its own endpoint.
    sts_endpoint = os.environ.get("AWS_ENDPOINT_URL_STS") or (
        endpoint if is_loopback(endpoint) else None
    )
    sts = session.client("sts", endpoint_url=sts_endpoint, config=config)
    return iam, sts

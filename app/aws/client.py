"""The one place that builds boto3 clients: explicit timeouts, standard retries, endpoints."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

from app import metrics
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


def _call_started(context: dict[str, Any], **_: Any) -> None:
    context["iam_onboard_started"] = time.perf_counter()


def _call_ended(model: Any, context: dict[str, Any], parsed: Any = None, **_: Any) -> None:
    # after-call: an answer came (an error answer too, before botocore raises it); with its
    # retries included, as the caller waited.
    error = (parsed or {}).get("Error", {}).get("Code", "") if isinstance(parsed, dict) else ""
    _record(model.name, str(error or ""), context)


def _call_failed(context: dict[str, Any], exception: Exception, **kwargs: Any) -> None:
    # after-call-error: no answer at all (a timeout, a refused connection), retries spent.
    model = kwargs.get("model")
    action = model.name if model is not None else str(context.get("iam_onboard_action", "?"))
    _record(action, type(exception).__name__, context)


def _attempt(context: dict[str, Any], parsed_response: Any = None, **kwargs: Any) -> None:
    # response-received: once per attempt, so a throttle that a retry got past counts too.
    if isinstance(parsed_response, dict):
        code = parsed_response.get("Error", {}).get("Code", "")
        if code:
            metrics.iam_attempt(str(context.get("iam_onboard_action", "?")), str(code))


def _remember_action(model: Any, context: dict[str, Any], **_: Any) -> None:
    context["iam_onboard_action"] = model.name


def _record(action: str, error_code: str, context: dict[str, Any]) -> None:
    started = context.pop("iam_onboard_started", None)
    if started is not None:
        metrics.iam_call(action, error_code, time.perf_counter() - started)


def instrument(client: Any) -> Any:
    """Count every call of a boto3 client for /metrics: action, error code, latency, throttles.

    botocore's events: before-call and after-call (or after-call-error) around one API call
    with its retries; response-received after each attempt. The handlers return None, so
    botocore's own handlers on the same events (stubbing, retries) decide as before.
    """
    service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events
    events.register(f"before-call.{service}", _call_started)
    events.register(f"before-call.{service}", _remember_action)
    events.register(f"after-call.{service}", _call_ended)
    events.register(f"after-call-error.{service}", _call_failed)
    events.register(f"response-received.{service}", _attempt)
    return client


@cache
def _data_loader() -> botocore.loaders.Loader:
    """One loader per process: a new session would otherwise read and parse the IAM and STS
    models from botocore's JSON files again (~0.1 s of CPU each time a portal is built)."""
    return botocore.loaders.create_loader()


def _new_session(**keys: str) -> boto3.session.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", _data_loader())
    return boto3.session.Session(botocore_session=core, **keys)


def _session(
    endpoint: str | None, credentials: Mapping[str, str] | None = None
) -> boto3.session.Session:
    if credentials:
        return _new_session(
            aws_access_key_id=credentials["aws_access_key_id"],
            aws_secret_access_key=credentials["aws_secret_access_key"],
        )
    session = _new_session()
    if is_loopback(endpoint) and session.get_credentials() is None:
        session = _new_session(
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
    iam = instrument(session.client("iam", endpoint_url=endpoint, config=config))
    # The sandbox serves STS on the same port; real AWS has its own endpoint.
    sts_endpoint = os.environ.get("AWS_ENDPOINT_URL_STS") or (
        endpoint if is_loopback(endpoint) else None
    )
    sts = instrument(session.client("sts", endpoint_url=sts_endpoint, config=config))
    return iam, sts

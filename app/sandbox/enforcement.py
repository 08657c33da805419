"""Enforcement mode: every request to the sandbox authenticated and authorized as AWS would.

A WSGI middleware around moto's app rather than moto's own access control
(`INITIAL_NO_AUTH_ACTION_COUNT`, moto/iam/access_control.py): moto's switch is process-global
(every server and `mock_aws` in the process would enforce), it checks every action against
resource `*` and evaluates no conditions but StringEquals. Here each sandbox server enforces
on its own, with the resource ARNs of request_context and the evaluator of policy_eval.

Authentication: the access key id of the SigV4 `Authorization` header must be an active
access key of an IAM user, or session credentials from GetSessionToken (with their session
token). The signature itself is trusted, as moto does. sts:GetSessionToken is answered here:
with SerialNumber and TokenCode the code is checked against that user's enabled device and
the credentials carry aws:MultiFactorAuthPresent=true; without them, =false.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

from moto.iam.models import AWSManagedPolicy, IAMBackend, User, iam_backends

from app.sandbox.policy_eval import Decision, Request, evaluate
from app.sandbox.request_context import CALLER_DEFAULT_ACTIONS, Caller, iam_requests
from app.sandbox.totp import codes_match

log = logging.getLogger("iam_onboard.sandbox.enforcement")

ENFORCE_ENV = "IAM_ONBOARD_SANDBOX_ENFORCE_POLICIES"
ADMIN_USER = "sandbox-admin"
ADMIN_ACCESS_KEY_ID = "AKIASANDBOXADMIN0000"
ADMIN_SECRET_ACCESS_KEY = "sandbox-admin-secret"  # noqa: S105 - published sandbox-only key
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
PROTECTED_TAG = {"Key": "iam-onboard:protected", "Value": "true"}
SESSION_SECONDS_DEFAULT, SESSION_SECONDS_RANGE = 43_200, (900, 129_600)

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_BAD_KEY_MESSAGE = "The security token included in the request is invalid."
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]*/[^/]*/([^/]*)/")


@dataclass(frozen=True)
class Session:
    user_name: str
    secret: str
    token: str
    mfa: bool
    issued: float
    expires: float


_sessions: dict[str, Session] = {}
_sessions_lock = threading.Lock()
_admin_lock = threading.Lock()  # the threaded server may see two first requests at once


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def backend(account: str) -> IAMBackend:
    found: IAMBackend = iam_backends[account]["global"]
    return found


# --- the account's administrator ------------------------------------------------------------


def ensure_admin(iam: IAMBackend) -> None:
    """`sandbox-admin` with AdministratorAccess and the published key (again after a reset)."""
    if ADMIN_USER in iam.users:
        return
    with _admin_lock:
        if ADMIN_USER not in iam.users:
            _create_admin(iam)


def _create_admin(iam: IAMBackend) -> None:
    user = iam.create_user("us-east-1", ADMIN_USER, "/", [PROTECTED_TAG])
    policy = iam.managed_policies.get(ADMIN_POLICY_ARN)
    if policy is None:
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        policy = AWSManagedPolicy(  # type: ignore[abstract]
            "AdministratorAccess",
            account_id=iam.account_id,
            region="us-east-1",
            default_version_id="v1",
            document=json.dumps(document),
            path="/",
        )
        iam.managed_policies[ADMIN_POLICY_ARN] = policy
    policy.attach_to(user)
    key = iam.create_access_key(ADMIN_USER)
    key.access_key_id = ADMIN_ACCESS_KEY_ID
    key.secret_access_key = ADMIN_SECRET_ACCESS_KEY


def provision_user_with_policy(
    account: str, user_name: str, policy_name: str, document: Mapping[str, Any]
) -> tuple[str, str]:
    """An IAM user holding one inline policy and an access key: (key id, secret)."""
    iam = backend(account)
    if user_name not in iam.users:
        iam.create_user("us-east-1", user_name, "/", [PROTECTED_TAG])
    iam.put_user_policy(user_name, policy_name, json.dumps(document))
    key = iam.create_access_key(user_name)
    return key.access_key_id, key.secret_access_key


# --- authentication -------------------------------------------------------------------------


def _identify(iam: IAMBackend, key_id: str, token: str | None) -> tuple[User, Session | None]:
    with _sessions_lock:
        session = _sessions.get(key_id)
    if session is not None:
        user = iam.users.get(session.user_name)
        if user is None or token is None or not secrets.compare_digest(token, session.token):
            raise Refusal(
                403,
                "InvalidClientTokenId",
                _BAD_KEY_MESSAGE,
            )
        if time.time() >= session.expires:
            raise Refusal(
                403, "ExpiredToken", "The security token included in the request is expired"
            )
        return user, session
    for user in list(iam.users.values()):  # a copy: a CreateUser may run meanwhile
        for key in user.access_keys:
            if key.access_key_id == key_id and key.status == "Active":
                return user, None
    raise Refusal(403, "InvalidClientTokenId", _BAD_KEY_MESSAGE)


def _caller(user: User, session: Session | None) -> Caller:
    if session is None:
        return Caller(user.name, user.arn, user.id)
    age = int(time.time() - session.issued) if session.mfa else None
    return Caller(user.name, user.arn, user.id, session.mfa, age)


# --- GetSessionToken ------------------------------------------------------------------------


def _get_session_token(
    iam: IAMBackend, user: User, session: Session | None, params: Mapping[str, str]
) -> str:
    if session is not None:
        raise Refusal(403, "AccessDenied", "Cannot call GetSessionToken with session credentials")
    seconds = int(params.get("DurationSeconds") or SESSION_SECONDS_DEFAULT)
    if not SESSION_SECONDS_RANGE[0] <= seconds <= SESSION_SECONDS_RANGE[1]:
        raise Refusal(400, "ValidationError", "DurationSeconds must be between 900 and 129600.")
    serial, code = params.get("SerialNumber"), params.get("TokenCode")
    mfa = serial is not None or code is not None
    if mfa:
        device = iam.virtual_mfa_devices.get(serial or "")
        if serial not in user.mfa_devices or device is None or not code:
            raise Refusal(
                403,
                "AccessDenied",
                "MultiFactorAuthentication failed, unable to validate MFA code.",
            )
        if not codes_match(device.base32_string_seed, code):
            raise Refusal(
                403,
                "AccessDenied",
                "MultiFactorAuthentication failed with invalid MFA one time pass code.",
            )
    now = time.time()
    key_id = "ASIA" + secrets.token_hex(8).upper()
    new = Session(
        user.name, secrets.token_urlsafe(30), secrets.token_urlsafe(96), mfa, now, now + seconds
    )
    with _sessions_lock:
        for old in [k for k, v in _sessions.items() if v.expires <= now]:
            del _sessions[old]
        _sessions[key_id] = new
    expiration = datetime.fromtimestamp(new.expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'<GetSessionTokenResponse xmlns="{STS_NS}"><GetSessionTokenResult><Credentials>'
        f"<SessionToken>{new.token}</SessionToken><SecretAccessKey>{new.secret}</SecretAccessKey>"
        f"<Expiration>{expiration}</Expiration><AccessKeyId>{key_id}</AccessKeyId>"
        f"</Credentials></GetSessionTokenResult><ResponseMetadata><RequestId>{_request_id()}"
        f"</RequestId></ResponseMetadata></GetSessionTokenResponse>"
    )


def _caller_identity(user: User) -> str:
    return (
        f'<GetCallerIdentityResponse xmlns="{STS_NS}"><GetCallerIdentityResult>'
        f"<Arn>{user.arn}</Arn><UserId>{user.id}</UserId><Account>{user.account_id}</Account>"
        f"</GetCallerIdentityResult><ResponseMetadata><RequestId>{_request_id()}</RequestId>"
        f"</ResponseMetadata></GetCallerIdentityResponse>"
    )


# --- the middleware -------------------------------------------------------------------------


def _request_id() -> str:
    return secrets.token_hex(16)


def _error(namespace: str, refusal: Refusal) -> str:
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type>'
        f"<Code>{refusal.code}</Code><Message>{escape(refusal.message)}</Message></Error>"
        f"<RequestId>{_request_id()}</RequestId></ErrorResponse>"
    )


def _denial(user: User, request: Request, decision: Decision) -> Refusal:
    why = (
        "with an explicit deny in an identity-based policy"
        if decision.explicit_deny
        else f"because no identity-based policy allows the {request.action} action"
    )
    return Refusal(
        403,
        "AccessDenied",
        f"User: {user.arn} is not authorized to perform: {request.action} on resource: "
        f"{request.resource} {why}",
    )


def user_policies(iam: IAMBackend, user: User) -> list[dict[str, Any]]:
    """The user's inline and attached policies and those of its groups, parsed."""
    documents: list[str] = [*user.policies.values()]
    owners: list[Any] = [user, *iam.get_groups_for_user(user.name)]
    for owner in owners:
        if owner is not user:
            documents.extend(owner.policies.values())
        for managed in owner.managed_policies.values():
            documents.extend(v.document for v in managed.versions if v.is_default)
    return [json.loads(d) for d in documents]


Start = Callable[..., Any]


class EnforcingApp:
    """WSGI middleware: authenticate, authorize, then hand the request to moto."""

    def __init__(
        self, app: Callable[[dict[str, Any], Start], Iterable[bytes]], account: str
    ) -> None:
        self._app = app
        self._account = account

    def __call__(self, environ: dict[str, Any], start_response: Start) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/moto-api/"):
            return self._app(environ, start_response)  # the tests' reset switch, loopback only
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = match.group(2) if match else "iam"
        namespace = STS_NS if service == "sts" else IAM_NS
        try:
            answer, caller = self._check(match, service, params, environ)
        except Refusal as refusal:
            return self._reply(start_response, refusal.status, _error(namespace, refusal))
        if answer is not None:
            return self._reply(start_response, 200, answer)
        action = params.get("Action")
        if service == "iam" and action in CALLER_DEFAULT_ACTIONS and "UserName" not in params:
            # IAM acts on the caller; moto finds it only for long-term keys, so name it.
            body += ("&" if body else "").encode() + urlencode({"UserName": caller}).encode()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self._app(environ, start_response)

    def _check(
        self,
        match: re.Match[str] | None,
        service: str,
        params: dict[str, str],
        environ: dict[str, Any],
    ) -> tuple[str | None, str]:
        iam = backend(self._account)
        ensure_admin(iam)
        if match is None:
            raise Refusal(
                403, "MissingAuthenticationToken", "Request is missing Authentication Token"
            )
        user, session = _identify(iam, match.group(1), environ.get("HTTP_X_AMZ_SECURITY_TOKEN"))
        action = params.get("Action", "")
        if service == "sts" and action == "GetSessionToken":
            return _get_session_token(iam, user, session, params), user.name
        if service == "sts" and action == "GetCallerIdentity":
            # AWS: needs no permission, and an explicit Deny does not stop it.
            return _caller_identity(user), user.name
        if session is not None and not session.mfa and service == "iam":
            # id_credentials_temp_control-access_getsessiontoken.html: GetSessionToken
            # credentials call no IAM API unless MFA was included (AWS: InvalidClientTokenId).
            raise Refusal(403, "InvalidClientTokenId", _BAD_KEY_MESSAGE)
        caller = _caller(user, session)
        if service == "iam":
            requests = iam_requests(action, params, caller, iam, self._account)
        else:
            requests = [Request(f"{service}:{action}", "*", caller.context(self._account))]
        policies = user_policies(iam, user)
        for request in requests:
            decision = evaluate(policies, request)
            if not decision.allowed:
                log.info(
                    "sandbox denies %s on %s to %s: %s",
                    request.action,
                    request.resource,
                    user.name,
                    decision.reason,
                )
                raise _denial(user, request, decision)
        return None, user.name

    @staticmethod
    def _reply(start_response: Start, status: int, xml: str) -> list[bytes]:
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden"}.get(status, "Error")
        data = xml.encode()
        start_response(
            f"{status} {reason}", [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))]
        )
        return [data]

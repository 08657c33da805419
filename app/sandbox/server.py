"""The embedded AWS: moto's IAM server on loopback, corrected where it departs from real IAM.

moto accepts any TOTP code, deletes users that still own credentials, drops
PasswordResetRequired, ignores MaxItems... The patches below, in pagination.py,
credential_report.py and aws_policies.py copy the AWS behaviour written beside each one, so a
portal bug that real AWS would catch is caught here too.

Caveat: moto keeps its backends (all IAM state) process-global and the patches live on
moto's classes, so every server in this process, and any in-process `moto.mock_aws`,
shares the same state and the same fidelity switch (app/sandbox/patching.py).
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import os
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.iam.exceptions import (
    DeleteConflictException,
    EntityAlreadyExists,
    IAMException,
    LimitExceededException,
    NoSuchEntity,
)
from moto.iam.models import IAMBackend, User
from moto.iam.responses import IamResponse
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

# Imported for their patches, which install_fidelity_fixes puts in place.
from app.sandbox import (  # noqa: F401
    aws_policies,
    credential_report,
    pagination,
    passwords,
    totp,
)
from app.sandbox.enforcement import ENFORCE_ENV, EnforcingApp
from app.sandbox.patching import install_fidelity_fixes, patch, set_fidelity
from app.sandbox.realism import RealismSettings, RealisticApp
from app.sandbox.realism import wrap as wrap_realism
from app.sandbox.totp import ClockApp, codes_match

SANDBOX_ACCOUNT_ID = "123456789012"  # moto's default account
SANDBOX_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}

MFA_DEVICES_PER_USER = 8  # AWS quota since Nov 2022


class InvalidAuthenticationCode(IAMException):
    code = "InvalidAuthenticationCode"  # HTTP 403 in botocore's IAM model


class Sandbox:
    """A running moto IAM server on loopback."""

    def __init__(
        self,
        server: BaseWSGIServer,
        thread: threading.Thread,
        previous: bool,
        enforcing: bool = False,
    ) -> None:
        self._server = server
        self._thread = thread
        self._previous_fidelity = previous
        self._stopped = False
        self.enforcing = enforcing  # IAM policies enforced (app/sandbox/enforcement.py)
        self.realism: RealisticApp | None = None  # latency, consistency, throttling (realism.py)
        self.host: str = str(server.server_address[0])
        self.port: int = int(server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()  # serve_forever closes the listening socket on its way out
        self._thread.join()
        set_fidelity(self._previous_fidelity)

    def set_clock(self, clock: totp.Clock | None) -> None:
        """Check TOTP codes against `clock` (e.g. the portal's in a test); None: the real time."""
        totp.set_clock(clock)

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's clock on, as if `seconds` had passed (the demo's portal too)."""
        totp.advance(seconds)

    def now(self) -> datetime:
        """The sandbox's time (the demo's portal runs on it)."""
        return totp.now()

    def reset(self) -> None:
        """Wipe all IAM state (moto's reset endpoint) and go back to the real time."""
        totp.set_clock(None)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("POST", "/moto-api/reset")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"sandbox reset failed with HTTP {response.status}")
        finally:
            conn.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    fidelity: bool = True,
    enforce_policies: bool | None = None,
    realism: RealismSettings | None = None,
    clock: totp.Clock | None = None,
) -> Sandbox:
    """Start moto's IAM server on loopback (port 0 picks a free port).

    enforce_policies (default: IAM_ONBOARD_SANDBOX_ENFORCE_POLICIES=1) authenticates and
    authorizes every request as AWS would (app/sandbox/enforcement.py); otherwise any
    credentials do anything. clock: what TOTP codes are checked against (app/sandbox/totp.py).

    realism (default: the IAM_ONBOARD_SANDBOX_LATENCY_MS, _CONSISTENCY_MS, _RATE and _BURST
    variables) makes IAM slow, eventually consistent and throttled as AWS is (realism.py).
    """
    # The sandbox accepts any credentials: it must never be reachable from another machine.
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the sandbox listens on an IPv4 loopback address only, not {host!r}")
    install_fidelity_fixes()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request
    app: Any = DomainDispatcherApplication(create_backend_app)
    if enforce_policies is None:
        enforce_policies = os.environ.get(ENFORCE_ENV, "") == "1"
    if enforce_policies:
        app = EnforcingApp(app, SANDBOX_ACCOUNT_ID)
    app = ClockApp(app)
    totp.set_clock(clock)
    app, realistic = wrap_realism(app, realism)  # outermost: throttled calls are not checked
    # Not moto's ThreadedMotoServer: its start() waits forever when the port is taken.
    try:
        server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    except SystemExit as exc:  # werkzeug exits instead of raising when the port is taken
        raise OSError(f"cannot listen on {host}:{port}") from exc
    thread = threading.Thread(target=server.serve_forever, name="iam-sandbox", daemon=True)
    previous = set_fidelity(fidelity)
    thread.start()
    sandbox = Sandbox(server, thread, previous, enforce_policies)
    sandbox.realism = realistic
    return sandbox


# --- MFA devices ---------------------------------------------------------------------


@patch(IAMBackend, "enable_mfa_device")
def _enable_mfa_device(
    self: IAMBackend, original: Callable[..., None], user_name: str, serial: str, c1: str, c2: str
) -> None:
    # AWS: unknown user or serial -> NoSuchEntity; a device already bound to a user ->
    # EntityAlreadyExists; a 9th device -> LimitExceeded; the two codes must be
    # consecutive TOTP codes of the device -> InvalidAuthenticationCode (403).
    user = self.get_user(user_name)
    device = self.virtual_mfa_devices.get(serial)
    if device is None:
        raise NoSuchEntity(f"MFA Device with serial number {serial} does not exist.")
    if device.user is not None or serial in user.mfa_devices:
        raise EntityAlreadyExists("MFA Device is already in use.")
    if len(user.mfa_devices) >= MFA_DEVICES_PER_USER:
        raise LimitExceededException(
            f"Cannot exceed quota for MFADevicesPerUser: {MFA_DEVICES_PER_USER}"
        )
    if not codes_match(device.base32_string_seed, c1, c2):
        raise InvalidAuthenticationCode("Authentication code for device is not valid.")
    original(self, user_name, serial, c1, c2)


@patch(IAMBackend, "delete_virtual_mfa_device")
def _delete_virtual_mfa_device(
    self: IAMBackend, original: Callable[..., None], serial: str
) -> None:
    # AWS: an assigned device must be deactivated first -> DeleteConflict (409).
    device = self.virtual_mfa_devices.get(serial)
    if device is not None and device.user is not None:
        raise DeleteConflictException("MFA Device is in use. Deactivate it before deleting it.")
    original(self, serial)


# --- users, login profiles, service-specific credentials -----------------------------


@patch(IAMBackend, "create_user")
def _create_user(
    self: IAMBackend,
    original: Callable[..., User],
    region_name: str,
    user_name: str,
    *a: Any,
    **kw: Any,
) -> User:
    # AWS: user names are unique case-insensitively ("Alice" clashes with "alice").
    # A copy of the names: the sandbox serves requests on threads, and another CreateUser may
    # add to the dict mid-iteration ("dictionary changed size during iteration", a 500).
    if any(name.lower() == user_name.lower() for name in list(self.users)):
        raise EntityAlreadyExists(f"User with name {user_name} already exists.")
    return original(self, region_name, user_name, *a, **kw)


@patch(IAMBackend, "delete_user")
def _delete_user(self: IAMBackend, original: Callable[..., None], user_name: str) -> None:
    # AWS: DeleteUser -> DeleteConflict (409) until everything attached to the user is gone.
    user = self.get_user(user_name)
    blockers = [
        (user.password is not None, "delete login profile"),
        (bool(user.access_keys), "delete access keys"),
        (bool(user.signing_certificates), "delete signing certificates"),
        (bool(user.ssh_public_keys), "delete SSH public keys"),
        (bool(_service_credentials(user)), "delete service-specific credentials"),
        (bool(user.mfa_devices), "delete MFA device"),
        (bool(self.get_groups_for_user(user_name)), "remove user from group"),
        (bool(user.policies), "delete policies"),
        (bool(user.managed_policies), "detach all policies"),
    ]
    for blocked, what in blockers:
        if blocked:
            raise DeleteConflictException(f"Cannot delete entity, must {what} first.")
    original(self, user_name)


@patch(IamResponse, "create_login_profile")
def _create_login_profile(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS keeps PasswordResetRequired (moto drops it): the console then forces a change.
    user = self.backend.create_login_profile(
        self._get_param("UserName"), self._get_param("Password")
    )
    user.password_reset_required = bool(self._get_param("PasswordResetRequired"))
    # AWS: the profile's own date (GetLoginProfile answers it too: app/sandbox/passwords.py).
    created = passwords.sandbox_utcnow()
    user.sandbox_password_changed = user.sandbox_profile_created = created  # type: ignore[attr-defined]
    profile = {
        "UserName": user.name,
        "CreateDate": created,
        "PasswordResetRequired": user.password_reset_required,
    }
    return ActionResult({"LoginProfile": profile})


@patch(IAMBackend, "update_login_profile")
def _update_login_profile(
    self: IAMBackend,
    original: Callable[..., User],
    user_name: str,
    password: str | None,
    reset_required: bool | None,
) -> User:
    # AWS changes only what is given; moto sets the password to None (deleting the
    # profile) when only PasswordResetRequired is sent.
    user = self.get_user(user_name)
    if not user.password:
        raise NoSuchEntity(f"Login Profile for User {user_name} cannot be found.")
    if password is not None:
        passwords.check_update(self, password)  # AWS: the account's password policy applies
        user.password = password
        user.sandbox_password_changed = passwords.sandbox_utcnow()  # type: ignore[attr-defined]
    if reset_required is not None:
        user.password_reset_required = bool(reset_required)
    return user


def _service_credentials(user: User) -> list[dict[str, Any]]:
    creds: list[dict[str, Any]] | None = getattr(user, "sandbox_service_credentials", None)
    if creds is None:
        creds = []
        user.sandbox_service_credentials = creds  # type: ignore[attr-defined]
    return creds


# moto lacks service-specific credentials (answers HTML 500); AWS has them and offboarding
# must list and delete them. Minimal versions: create, list, delete.
@patch(IamResponse, "create_service_specific_credential")
def _create_service_specific_credential(
    self: IamResponse, original: Callable[..., Any]
) -> ActionResult:
    user = self.backend.get_user(self._get_param("UserName"))
    service = self._get_param("ServiceName")
    creds = _service_credentials(user)
    if sum(c["ServiceName"] == service for c in creds) >= 2:  # AWS: 2 per user per service
        raise LimitExceededException("Cannot exceed quota for ServiceSpecificCredentialsPerUser")
    cred = {
        "CreateDate": utcnow(),
        "ServiceName": service,
        "ServiceUserName": f"{user.name}-at-{SANDBOX_ACCOUNT_ID}",
        "ServiceSpecificCredentialId": "ACCA" + secrets.token_hex(8).upper(),
        "UserName": user.name,
        "Status": "Active",
    }
    creds.append(cred)
    return ActionResult({"ServiceSpecificCredential": {**cred, "ServicePassword": "sandbox"}})


@patch(IamResponse, "list_service_specific_credentials")
def _list_service_specific_credentials(
    self: IamResponse, original: Callable[..., Any]
) -> ActionResult:
    user = self.backend.get_user(self._get_param("UserName"))
    service = self._get_param("ServiceName")
    items = [c for c in _service_credentials(user) if service in (None, c["ServiceName"])]
    return ActionResult({"ServiceSpecificCredentials": items, "IsTruncated": False})


@patch(IamResponse, "delete_service_specific_credential")
def _delete_service_specific_credential(
    self: IamResponse, original: Callable[..., Any]
) -> ActionResult:
    user = self.backend.get_user(self._get_param("UserName"))
    cred_id = self._get_param("ServiceSpecificCredentialId")
    creds = _service_credentials(user)
    if not any(c["ServiceSpecificCredentialId"] == cred_id for c in creds):
        raise NoSuchEntity(f"No such credential {cred_id} for user {user.name}.")
    creds[:] = [c for c in creds if c["ServiceSpecificCredentialId"] != cred_id]
    return EmptyResult()

"""The embedded AWS: moto's IAM server on loopback, corrected where it departs from real IAM.

moto accepts any TOTP code, deletes users that still own credentials, drops
PasswordResetRequired, ignores MaxItems... The patches below copy the AWS behaviour
written beside each one, so a portal bug that real AWS would catch is caught here too.

Caveat: moto keeps its backends (all IAM state) process-global and the patches live on
moto's classes, so every server in this process, and any in-process `moto.mock_aws`,
shares the same state and the same fidelity switch (`_fidelity_enabled`).
"""

from __future__ import annotations

import base64
import csv
import http.client
import io
import ipaddress
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.iam.exceptions import (
    DeleteConflictException,
    EntityAlreadyExists,
    IAMException,
    LimitExceededException,
    NoSuchEntity,
    ReportNotPresentException,
    ValidationError,
)
from moto.iam.models import IAMBackend, User
from moto.iam.responses import IamResponse
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from app.sandbox import totp
from app.sandbox.enforcement import ENFORCE_ENV, EnforcingApp
from app.sandbox.totp import ClockApp, codes_match

SANDBOX_ACCOUNT_ID = "123456789012"  # moto's default account
SANDBOX_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}

MFA_DEVICES_PER_USER = 8  # AWS quota since Nov 2022
MAX_ITEMS_DEFAULT, MAX_ITEMS_LIMIT = 100, 1000
REPORT_TIME = "%Y-%m-%dT%H:%M:%S+00:00"

# Read by every patch at call time; set by start_sandbox, restored by Sandbox.stop.
_fidelity_enabled = True
_installed = False
_install_lock = threading.Lock()


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
        self.host: str = str(server.server_address[0])
        self.port: int = int(server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        global _fidelity_enabled
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()  # serve_forever closes the listening socket on its way out
        self._thread.join()
        _fidelity_enabled = self._previous_fidelity

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
    clock: totp.Clock | None = None,
) -> Sandbox:
    """Start moto's IAM server on loopback (port 0 picks a free port).

    enforce_policies (default: IAM_ONBOARD_SANDBOX_ENFORCE_POLICIES=1) authenticates and
    authorizes every request as AWS would (app/sandbox/enforcement.py); otherwise any
    credentials do anything. clock: what TOTP codes are checked against (app/sandbox/totp.py).
    """
    global _fidelity_enabled
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
    # Not moto's ThreadedMotoServer: its start() waits forever when the port is taken.
    try:
        server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    except SystemExit as exc:  # werkzeug exits instead of raising when the port is taken
        raise OSError(f"cannot listen on {host}:{port}") from exc
    thread = threading.Thread(target=server.serve_forever, name="iam-sandbox", daemon=True)
    previous, _fidelity_enabled = _fidelity_enabled, fidelity
    thread.start()
    return Sandbox(server, thread, previous, enforce_policies)


# --- patching machinery ------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])
_PATCHES: list[tuple[type, str, Callable[..., Any]]] = []


def _patch(cls: type, name: str) -> Callable[[F], F]:
    """Register `fix(self, original, *args)` to replace `cls.name` while fidelity is on."""

    def register(fix: F) -> F:
        _PATCHES.append((cls, name, fix))
        return fix

    return register


def _unimplemented(self: Any, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("not implemented by moto")


def _wrap(original: Callable[..., Any], fix: Callable[..., Any]) -> Callable[..., Any]:
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _fidelity_enabled:
            return fix(self, original, *args, **kwargs)
        return original(self, *args, **kwargs)

    patched.__name__ = original.__name__ if original is not _unimplemented else fix.__name__
    return patched


def install_fidelity_fixes() -> None:
    """Patch moto's IAM classes once; the patches obey the module's fidelity switch."""
    global _installed
    with _install_lock:
        if _installed:
            return
        for cls, name, fix in _PATCHES:
            setattr(cls, name, _wrap(getattr(cls, name, _unimplemented), fix))
        _installed = True


# --- MFA devices ---------------------------------------------------------------------


@_patch(IAMBackend, "enable_mfa_device")
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


@_patch(IAMBackend, "delete_virtual_mfa_device")
def _delete_virtual_mfa_device(
    self: IAMBackend, original: Callable[..., None], serial: str
) -> None:
    # AWS: an assigned device must be deactivated first -> DeleteConflict (409).
    device = self.virtual_mfa_devices.get(serial)
    if device is not None and device.user is not None:
        raise DeleteConflictException("MFA Device is in use. Deactivate it before deleting it.")
    original(self, serial)


@_patch(IamResponse, "list_mfa_devices")
def _list_mfa_devices(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS pages every list call with MaxItems/Marker; moto returns everything at once.
    user = self.backend.get_user(self._get_param("UserName"))
    devices, marker = _paginate(
        list(user.mfa_devices.values()), lambda d: d.serial_number, self._get_param
    )
    items = [
        {"UserName": user.name, "SerialNumber": d.serial_number, "EnableDate": d.enable_date}
        for d in devices
    ]
    return ActionResult({"MFADevices": items, "IsTruncated": bool(marker), "Marker": marker})


@_patch(IamResponse, "list_virtual_mfa_devices")
def _list_virtual_mfa_devices(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS returns the seed and QR code only from CreateVirtualMFADevice, never in lists;
    # moto lists them, and its pages can end on an empty page.
    status = self._get_param("AssignmentStatus") or "Any"
    devices = [
        d
        for d in self.backend.virtual_mfa_devices.values()
        if status == "Any" or (d.user is not None) == (status == "Assigned")
    ]
    page, marker = _paginate(devices, lambda d: d.serial_number, self._get_param)
    items = [
        {"SerialNumber": d.serial_number, "User": d.user, "EnableDate": d.enable_date}
        if d.user is not None
        else {"SerialNumber": d.serial_number}
        for d in page
    ]
    return ActionResult({"VirtualMFADevices": items, "IsTruncated": bool(marker), "Marker": marker})


# --- users, login profiles, service-specific credentials -----------------------------


@_patch(IAMBackend, "create_user")
def _create_user(
    self: IAMBackend,
    original: Callable[..., User],
    region_name: str,
    user_name: str,
    *a: Any,
    **kw: Any,
) -> User:
    # AWS: user names are unique case-insensitively ("Alice" clashes with "alice").
    if any(name.lower() == user_name.lower() for name in self.users):
        raise EntityAlreadyExists(f"User with name {user_name} already exists.")
    return original(self, region_name, user_name, *a, **kw)


@_patch(IAMBackend, "delete_user")
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


@_patch(IamResponse, "list_users")
def _list_users(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS: at most MaxItems (default 100, max 1000) per page, IsTruncated + Marker.
    users = list(self.backend.list_users(self._get_param("PathPrefix"), None, None))
    page, marker = _paginate(users, lambda u: u.name, self._get_param)
    return ActionResult({"Users": page, "IsTruncated": bool(marker), "Marker": marker})


@_patch(IamResponse, "get_group")
def _get_group(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS pages the group's members like any list call.
    group = self.backend.get_group(self._get_param("GroupName"))
    page, marker = _paginate(list(group.users), lambda u: u.name, self._get_param)
    result = {"Group": group, "Users": page, "IsTruncated": bool(marker), "Marker": marker}
    return ActionResult(result)


@_patch(IamResponse, "create_login_profile")
def _create_login_profile(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    # AWS keeps PasswordResetRequired (moto drops it): the console then forces a change.
    user = self.backend.create_login_profile(
        self._get_param("UserName"), self._get_param("Password")
    )
    user.password_reset_required = bool(self._get_param("PasswordResetRequired"))
    user.sandbox_password_changed = utcnow()  # type: ignore[attr-defined]
    profile = {
        "UserName": user.name,
        "CreateDate": user.sandbox_password_changed,  # type: ignore[attr-defined]
        "PasswordResetRequired": user.password_reset_required,
    }
    return ActionResult({"LoginProfile": profile})


@_patch(IAMBackend, "update_login_profile")
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
        user.password = password
        user.sandbox_password_changed = utcnow()  # type: ignore[attr-defined]
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
@_patch(IamResponse, "create_service_specific_credential")
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


@_patch(IamResponse, "list_service_specific_credentials")
def _list_service_specific_credentials(
    self: IamResponse, original: Callable[..., Any]
) -> ActionResult:
    user = self.backend.get_user(self._get_param("UserName"))
    service = self._get_param("ServiceName")
    items = [c for c in _service_credentials(user) if service in (None, c["ServiceName"])]
    return ActionResult({"ServiceSpecificCredentials": items, "IsTruncated": False})


@_patch(IamResponse, "delete_service_specific_credential")
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


# --- credential report -----------------------------------------------------------

REPORT_COLUMNS = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
).split(",")


def _report_row(backend: IAMBackend, user: User) -> list[str]:
    def when(value: datetime | None, absent: str = "N/A") -> str:
        return value.strftime(REPORT_TIME) if value else absent

    if user.password:
        changed: datetime = getattr(user, "sandbox_password_changed", user.create_date)
        policy = backend.account_password_policy
        rotation = (
            when(changed + timedelta(days=policy.max_password_age))
            if policy is not None and policy.expire_passwords
            else "N/A"
        )
        password = ["true", when(user.password_last_used, "no_information"), when(changed)]
    else:
        password, rotation = ["false", "N/A", "N/A"], "N/A"
    keys: list[str] = []
    for key in [*user.access_keys[:2], None, None][:2]:
        if key is None:
            keys += ["false", "N/A", "N/A", "N/A", "N/A"]
            continue
        used = key.last_used
        keys += [
            str(key.status == "Active").lower(),
            when(key.create_date),
            when(used.timestamp if used else None),
            used.region if used else "N/A",
            used.service if used else "N/A",
        ]
    certs: list[str] = []
    for cert in [*user.signing_certificates.values(), None, None][:2]:
        active = cert is not None and cert.status == "Active"
        certs += [str(active).lower(), when(cert.upload_date if cert else None)]
    created = when(user.create_date)
    mfa = str(bool(user.mfa_devices)).lower()
    return [user.name, user.arn, created, *password, rotation, mfa, *keys, *certs]


@_patch(IAMBackend, "get_credential_report")
def _get_credential_report(self: IAMBackend, original: Callable[..., str]) -> str:
    # AWS: first row is <root_account>; no password -> password_* are N/A; names are CSV
    # quoted when needed. mfa_active is true when the user has any MFA device.
    if not self.report_generated():
        raise ReportNotPresentException("Credential report not present")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    root_arn = f"arn:aws:iam::{self.account_id}:root"
    root = ["<root_account>", root_arn, "2020-01-01T00:00:00+00:00", "not_supported"]
    root += ["no_information", "not_supported", "not_supported", "true"]
    root += ["false", "N/A", "N/A", "N/A", "N/A"] * 2 + ["false", "N/A"] * 2
    writer.writerow(root)
    for user in self.users.values():
        writer.writerow(_report_row(self, user))
    return out.getvalue()


@_patch(IamResponse, "generate_credential_report")
def _generate_credential_report(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    self.backend.sandbox_report_time = utcnow()  # type: ignore[attr-defined]
    result: ActionResult = original(self)
    return result


@_patch(IamResponse, "get_credential_report")
def _get_credential_report_response(
    self: IamResponse, original: Callable[..., Any]
) -> ActionResult:
    # moto always claims the report was generated in 2015; the portal shows the report's age.
    content = self.backend.get_credential_report()
    generated = getattr(self.backend, "sandbox_report_time", None) or utcnow()
    result = {"Content": content, "ReportFormat": "text/csv", "GeneratedTime": generated}
    return ActionResult(result)


# --- pagination -----------------------------------------------------------------------

T = TypeVar("T")


def _paginate(
    items: Sequence[T], key: Callable[[T], str], param: Callable[..., Any]
) -> tuple[list[T], str | None]:
    """One page in name order, continuing after the marker's item even if it was deleted."""
    raw_max = param("MaxItems")
    max_items = int(raw_max) if raw_max is not None else MAX_ITEMS_DEFAULT
    if not 1 <= max_items <= MAX_ITEMS_LIMIT:
        raise ValidationError(
            f"1 validation error detected: Value '{max_items}' at 'maxItems' failed to "
            f"satisfy constraint: Member must have value between 1 and {MAX_ITEMS_LIMIT}"
        )
    ordered = sorted(items, key=lambda item: (key(item).lower(), key(item)))
    marker = param("Marker")
    if marker:
        try:
            after = base64.urlsafe_b64decode(marker.encode()).decode()
        except ValueError as exc:
            raise ValidationError("Invalid Marker.") from exc
        ordered = [i for i in ordered if (key(i).lower(), key(i)) > (after.lower(), after)]
    page = ordered[:max_items]
    if len(ordered) <= max_items:
        return page, None
    return page, base64.urlsafe_b64encode(key(page[-1]).encode()).decode()

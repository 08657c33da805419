"""The credential report as AWS writes it: moto's lacks the root row, rotation and report time."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.iam.exceptions import ReportNotPresentException
from moto.iam.models import IAMBackend, User
from moto.iam.responses import IamResponse

from app.sandbox.patching import patch

REPORT_TIME = "%Y-%m-%dT%H:%M:%S+00:00"

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


@patch(IAMBackend, "get_credential_report")
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
    for user in list(self.users.values()):  # a copy: a CreateUser may run meanwhile
        writer.writerow(_report_row(self, user))
    return out.getvalue()


@patch(IamResponse, "generate_credential_report")
def _generate_credential_report(self: IamResponse, original: Callable[..., Any]) -> ActionResult:
    self.backend.sandbox_report_time = utcnow()  # type: ignore[attr-defined]
    result: ActionResult = original(self)
    return result


@patch(IamResponse, "get_credential_report")
def _get_credential_report_response(
    self: IamResponse, original: Callable[..., Any]
) -> ActionResult:
    # moto always claims the report was generated in 2015; the portal shows the report's age.
    content = self.backend.get_credential_report()
    generated = getattr(self.backend, "sandbox_report_time", None) or utcnow()
    result = {"Content": content, "ReportFormat": "text/csv", "GeneratedTime": generated}
    return ActionResult(result)

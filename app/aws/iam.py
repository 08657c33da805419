"""The IAM gateway: every IAM and STS call the portal makes, returning plain data.

Every call goes through `_call` or `_pages` with the AWS operation name, so the set of
actions the portal needs can be read off this file (tests compare it to the runtime policy).
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from botocore import xform_name

from app.aws.errors import AwsError, NoSuchEntity, ReportNotReady, translate
from app.aws.ownership import (
    DEVICE_PATH,
    EMAIL_TAG,
    INVITATION_TAG,
    MANAGED_TAG,
    PROTECTED_TAG,
    is_portal_device,
)
from app.aws.propagation import Propagation
from app.aws.timing import aws_time
from app.i18n import _

# The names IAM can hold (its UserName pattern and length); no user has any other name.
USER_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
ReportRow = dict[str, str]  # a credential report line: column name -> value
_REMOVALS = ("Delete", "Remove", "Deactivate", "Detach")


@dataclass(frozen=True)
class VirtualDevice:
    serial: str
    seed: str  # base32 text; lives only until the device is enabled


@dataclass(frozen=True)
class MfaDevice:
    serial: str
    user_name: str | None
    enabled_at: datetime | None
    virtual: bool

    @property
    def portal(self) -> bool:
        """Created by the portal (under its device path): the only devices it may delete."""
        return is_portal_device(self.serial)


@dataclass
class UserResources:
    """Everything attached to a user that DeleteUser would refuse to leave behind."""

    login_profile: bool = False
    access_keys: list[str] = field(default_factory=list)
    signing_certificates: list[str] = field(default_factory=list)
    ssh_public_keys: list[str] = field(default_factory=list)
    service_credentials: list[str] = field(default_factory=list)
    mfa_devices: list[MfaDevice] = field(default_factory=list)
    inline_policies: list[str] = field(default_factory=list)
    attached_policies: list[str] = field(default_factory=list)  # policy ARNs
    groups: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        # Every field, so a kind of resource added later is never left out.
        return not any(getattr(self, f.name) for f in fields(self))


class IamGateway:
    """Thin functions over an IAM client and an STS client; AWS errors become AwsError."""

    def __init__(
        self,
        iam: Any,
        sts: Any,
        *,
        on_call: Callable[[str], None] | None = None,
        propagation: Propagation | None = None,
        patient: bool = False,
    ):
        self._iam = iam
        self._sts = sts
        self._on_call = on_call
        self._propagation = propagation
        self._patient = patient and propagation is not None
        self.last_request_id: str | None = None

    def just_created(self) -> IamGateway:
        """The same IAM, for calls naming an entity the portal itself has just created: a
        NoSuchEntity answer is IAM not having replicated it yet (app/aws/propagation.py), so
        the call is retried, jittered, within the propagation time. Never use it for entities
        the portal did not create: there NoSuchEntity is the answer."""
        return IamGateway(
            self._iam,
            self._sts,
            on_call=self._on_call,
            propagation=self._propagation,
            patient=True,
        )

    def until_seen(self, seen: Callable[[], bool]) -> bool:
        """Read until `seen()` shows the portal's own write (a list IAM has not updated yet),
        within the propagation time; a gateway without one reads once."""
        if self._propagation is None:
            return seen()
        return self._propagation.until(seen)

    # -- plumbing -------------------------------------------------------------------------
    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        if self._patient and self._propagation is not None:
            # A removal answering NoSuchEntity to botocore's retry (the first attempt's answer
            # was lost) most likely removed the thing itself: that is not waited out.
            removal = operation.startswith(_REMOVALS)
            return self._propagation.retry(
                lambda: self._call_once(operation, **params),
                final=lambda exc: removal and exc.retried,
            )
        return self._call_once(operation, **params)

    def _call_once(self, operation: str, **params: Any) -> dict[str, Any]:
        client = self._sts if operation == "GetCallerIdentity" else self._iam
        if self._on_call:
            self._on_call(operation)
        spent = aws_time.get()
        if spent is not None:
            spent.started()
        try:
            response: dict[str, Any] = getattr(client, xform_name(operation))(**params)
        except Exception as exc:
            err = translate(exc, operation)
            self.last_request_id = err.request_id
            raise err from exc
        finally:
            if spent is not None:
                spent.ended()
        self.last_request_id = response.get("ResponseMetadata", {}).get("RequestId")
        return response

    def _pages(self, operation: str, key: str, **params: Any) -> Iterator[Any]:
        """Follow Marker to the end; IAM may return short pages while IsTruncated is true."""
        params.setdefault("MaxItems", 1000)
        while True:
            page = self._call(operation, **params)
            yield from page.get(key, [])
            if not page.get("IsTruncated") or not page.get("Marker"):
                return
            params["Marker"] = page["Marker"]

    # -- identity and account ---------------------------------------------------------------
    def caller_identity(self) -> dict[str, str]:
        r = self._call("GetCallerIdentity")
        return {"account": r["Account"], "arn": r["Arn"], "user_id": r["UserId"]}

    def account_alias(self) -> str | None:
        aliases = list(self._pages("ListAccountAliases", "AccountAliases"))
        return aliases[0] if aliases else None

    def password_policy(self) -> dict[str, Any] | None:
        """The account's password policy, or None when AWS's default rules apply."""
        try:
            return dict(self._call("GetAccountPasswordPolicy")["PasswordPolicy"])
        except NoSuchEntity:
            return None

    # -- users ----------------------------------------------------------------------------
    def get_user(self, name: str) -> dict[str, Any] | None:
        if not USER_NAME.fullmatch(name):  # asking would only get a validation error back
            return None
        try:
            return dict(self._call("GetUser", UserName=name)["User"])
        except NoSuchEntity:
            return None

    def user_exists(self, name: str) -> bool:
        return self.get_user(name) is not None

    def list_users(self) -> list[dict[str, Any]]:
        return list(self._pages("ListUsers", "Users"))

    def create_user(self, name: str, *, tags: dict[str, str]) -> dict[str, Any]:
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        return dict(self._call("CreateUser", UserName=name, Path="/", Tags=tag_list)["User"])

    def user_tags(self, name: str) -> dict[str, str]:
        tags = self._pages("ListUserTags", "Tags", UserName=name)
        return {t["Key"]: t["Value"] for t in tags}

    def tag_user(self, name: str, tags: dict[str, str]) -> None:
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        self._call("TagUser", UserName=name, Tags=tag_list)

    def delete_user(self, name: str) -> None:
        self._call("DeleteUser", UserName=name)

    # -- groups ---------------------------------------------------------------------------
    def get_group(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("GetGroup", GroupName=name, MaxItems=1)["Group"])
        except NoSuchEntity:
            return None

    def group_members(self, name: str) -> list[str]:
        return [u["UserName"] for u in self._pages("GetGroup", "Users", GroupName=name)]

    def create_group(self, name: str) -> dict[str, Any]:
        return dict(self._call("CreateGroup", GroupName=name, Path="/")["Group"])

    def add_user_to_group(self, user: str, group: str) -> None:
        self._call("AddUserToGroup", UserName=user, GroupName=group)

    def remove_user_from_group(self, user: str, group: str) -> None:
        self._call("RemoveUserFromGroup", UserName=user, GroupName=group)

    def groups_for_user(self, user: str) -> list[str]:
        return [g["GroupName"] for g in self._pages("ListGroupsForUser", "Groups", UserName=user)]

    def attached_group_policies(self, group: str) -> list[dict[str, str]]:
        return list(self._pages("ListAttachedGroupPolicies", "AttachedPolicies", GroupName=group))

    def attach_group_policy(self, group: str, policy_arn: str) -> None:
        self._call("AttachGroupPolicy", GroupName=group, PolicyArn=policy_arn)

    # -- managed policies ----------------------------------------------------------------
    def get_policy(self, arn: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("GetPolicy", PolicyArn=arn)["Policy"])
        except NoSuchEntity:
            return None

    def policy_document(self, arn: str, version_id: str) -> dict[str, Any]:
        r = self._call("GetPolicyVersion", PolicyArn=arn, VersionId=version_id)
        document = r["PolicyVersion"]["Document"]
        if isinstance(document, str):
            document = json.loads(unquote(document))
        return dict(document)

    def create_policy(self, name: str, document: str, *, description: str) -> dict[str, Any]:
        r = self._call(
            "CreatePolicy",
            PolicyName=name,
            PolicyDocument=document,
            Description=description,
            Path="/",
        )
        return dict(r["Policy"])

    def policy_versions(self, arn: str) -> list[dict[str, Any]]:
        return list(self._pages("ListPolicyVersions", "Versions", PolicyArn=arn))

    def create_policy_version(self, arn: str, document: str) -> None:
        self._call("CreatePolicyVersion", PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)

    def delete_policy_version(self, arn: str, version_id: str) -> None:
        self._call("DeletePolicyVersion", PolicyArn=arn, VersionId=version_id)

    def policy_holders(self, arn: str) -> tuple[list[str], list[str]]:
        """The users and the groups a managed policy is attached to (roles left out)."""
        users: list[str] = []
        groups: list[str] = []
        params: dict[str, Any] = {"PolicyArn": arn, "MaxItems": 1000}
        while True:
            page = self._call("ListEntitiesForPolicy", **params)
            users += [u["UserName"] for u in page.get("PolicyUsers", [])]
            groups += [g["GroupName"] for g in page.get("PolicyGroups", [])]
            if not page.get("IsTruncated") or not page.get("Marker"):
                return users, groups
            params["Marker"] = page["Marker"]

    def attached_user_policies(self, user: str) -> list[str]:
        pages = self._pages("ListAttachedUserPolicies", "AttachedPolicies", UserName=user)
        return [p["PolicyArn"] for p in pages]

    def detach_user_policy(self, user: str, policy_arn: str) -> None:
        self._call("DetachUserPolicy", UserName=user, PolicyArn=policy_arn)

    def inline_user_policies(self, user: str) -> list[str]:
        return list(self._pages("ListUserPolicies", "PolicyNames", UserName=user))

    def delete_user_policy(self, user: str, policy_name: str) -> None:
        self._call("DeleteUserPolicy", UserName=user, PolicyName=policy_name)

    # -- MFA ------------------------------------------------------------------------------
    def create_virtual_mfa_device(self, name: str) -> VirtualDevice:
        # No tags: tagging needs iam:TagMFADevice too. The path marks the device as the portal's
        # (is_portal_device): its policy lets it create and delete devices there only.
        r = self._call("CreateVirtualMFADevice", VirtualMFADeviceName=name, Path=DEVICE_PATH)
        device = r["VirtualMFADevice"]
        seed = device["Base32StringSeed"]
        # boto3 hands blobs back as bytes; the seed is ASCII base32 text.
        seed_text = seed.decode("ascii") if isinstance(seed, bytes | bytearray) else str(seed)
        return VirtualDevice(serial=device["SerialNumber"], seed=seed_text)

    def virtual_mfa_devices(self, status: str = "Any") -> list[MfaDevice]:
        items = self._pages("ListVirtualMFADevices", "VirtualMFADevices", AssignmentStatus=status)
        return [
            MfaDevice(
                serial=d["SerialNumber"],
                user_name=(d.get("User") or {}).get("UserName"),
                enabled_at=d.get("EnableDate"),
                virtual=True,
            )
            for d in items
        ]

    def delete_virtual_mfa_device(self, serial: str) -> None:
        self._call("DeleteVirtualMFADevice", SerialNumber=serial)

    def enable_mfa_device(self, user: str, serial: str, code1: str, code2: str) -> None:
        self._call(
            "EnableMFADevice",
            UserName=user,
            SerialNumber=serial,
            AuthenticationCode1=code1,
            AuthenticationCode2=code2,
        )

    def deactivate_mfa_device(self, user: str, serial: str) -> None:
        self._call("DeactivateMFADevice", UserName=user, SerialNumber=serial)

    def mfa_devices(self, user: str) -> list[MfaDevice]:
        items = self._pages("ListMFADevices", "MFADevices", UserName=user)
        return [
            MfaDevice(
                serial=d["SerialNumber"],
                user_name=d.get("UserName", user),
                enabled_at=d.get("EnableDate"),
                virtual=":mfa/" in d["SerialNumber"],
            )
            for d in items
        ]

    # -- login profile ----------------------------------------------------------------------
    def create_login_profile(self, user: str, password: str) -> None:
        self._call(
            "CreateLoginProfile", UserName=user, Password=password, PasswordResetRequired=True
        )

    def login_profile(self, user: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("GetLoginProfile", UserName=user)["LoginProfile"])
        except NoSuchEntity:
            return None

    def delete_login_profile(self, user: str) -> None:
        self._call("DeleteLoginProfile", UserName=user)

    # -- long-term credentials ------------------------------------------------------------
    def access_keys(self, user: str) -> list[dict[str, Any]]:
        return list(self._pages("ListAccessKeys", "AccessKeyMetadata", UserName=user))

    def access_key_last_used(self, key_id: str) -> datetime | None:
        r = self._call("GetAccessKeyLastUsed", AccessKeyId=key_id)
        used: datetime | None = r.get("AccessKeyLastUsed", {}).get("LastUsedDate")
        return used

    def delete_access_key(self, user: str, key_id: str) -> None:
        self._call("DeleteAccessKey", UserName=user, AccessKeyId=key_id)

    def signing_certificates(self, user: str) -> list[str]:
        items = self._pages("ListSigningCertificates", "Certificates", UserName=user)
        return [c["CertificateId"] for c in items]

    def delete_signing_certificate(self, user: str, cert_id: str) -> None:
        self._call("DeleteSigningCertificate", UserName=user, CertificateId=cert_id)

    def ssh_public_keys(self, user: str) -> list[str]:
        items = self._pages("ListSSHPublicKeys", "SSHPublicKeys", UserName=user)
        return [k["SSHPublicKeyId"] for k in items]

    def delete_ssh_public_key(self, user: str, key_id: str) -> None:
        self._call("DeleteSSHPublicKey", UserName=user, SSHPublicKeyId=key_id)

    def service_specific_credentials(self, user: str) -> list[str]:
        # Not paginated in the IAM API.
        r = self._call("ListServiceSpecificCredentials", UserName=user)
        return [c["ServiceSpecificCredentialId"] for c in r.get("ServiceSpecificCredentials", [])]

    def delete_service_specific_credential(self, user: str, cred_id: str) -> None:
        self._call(
            "DeleteServiceSpecificCredential", UserName=user, ServiceSpecificCredentialId=cred_id
        )

    def user_resources(self, user: str) -> UserResources:
        """List everything attached to `user` (the offboarding dry run)."""
        return UserResources(
            login_profile=self.login_profile(user) is not None,
            access_keys=[k["AccessKeyId"] for k in self.access_keys(user)],
            signing_certificates=self.signing_certificates(user),
            ssh_public_keys=self.ssh_public_keys(user),
            service_credentials=self.service_specific_credentials(user),
            mfa_devices=self.mfa_devices(user),
            inline_policies=self.inline_user_policies(user),
            attached_policies=self.attached_user_policies(user),
            groups=self.groups_for_user(user),
        )

    # -- credential report ------------------------------------------------------------------
    def credential_report(self, *, wait_seconds: float = 10.0) -> tuple[Iterator[ReportRow], Any]:
        """Rows of the credential report, read as iterated, and when it was made (<= 4 h ago)."""
        deadline = time.monotonic() + wait_seconds
        while True:
            state = self._call("GenerateCredentialReport").get("State")
            if state == "COMPLETE":
                break
            if time.monotonic() > deadline:
                raise ReportNotReady(
                    _("AWS is still preparing the credential report. Try again in a moment."),
                    action="GenerateCredentialReport",
                )
            time.sleep(0.5)
        r = self._call("GetCredentialReport")
        content = r["Content"]
        text = content.decode("utf-8") if isinstance(content, bytes | bytearray) else str(content)
        return csv.DictReader(text.splitlines()), r.get("GeneratedTime")


__all__ = [
    "AwsError",
    "EMAIL_TAG",
    "INVITATION_TAG",
    "IamGateway",
    "MANAGED_TAG",
    "MfaDevice",
    "PROTECTED_TAG",
    "UserResources",
    "VirtualDevice",
    "is_portal_device",
]

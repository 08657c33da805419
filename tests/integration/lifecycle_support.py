"""Shared by the lifecycle and housekeeping tests: enrolling for real, building a busy user."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyotp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.sandbox import totp as sandbox_totp
from app.services.enrollment import (
    enrollment_view,
    prepare_device,
    start_enrollment,
    verify_codes,
)
from app.services.portal import Actor, Portal

NEW_HIRE = Actor("new hire", "198.51.100.7")


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


def start(portal: Portal, link: str) -> tuple[str, str]:
    """Open the link and reach the QR step; returns the enrollment id and the seed shown."""
    enrollment_id = start_enrollment(portal, token=token_of(link), actor=NEW_HIRE)
    prepare_device(portal, enrollment_id=enrollment_id, actor=NEW_HIRE)
    view = enrollment_view(portal, enrollment_id=enrollment_id)
    assert view.stage == "scan", view
    assert view.scan is not None
    return enrollment_id, view.scan.seed


def codes(seed: str, now: dt.datetime) -> tuple[str, str]:
    """Two consecutive codes as a phone shows them at `now` (the portal's and sandbox's time)."""
    step = int(now.timestamp()) // 30
    totp = pyotp.TOTP(seed)
    return totp.generate_otp(step - 1), totp.generate_otp(step)


def enroll(portal: Portal, link: str) -> str:
    """The whole enrollment through the enrollment service; returns the seed it showed."""
    enrollment_id, seed = start(portal, link)
    code1, code2 = codes(seed, portal.clock())
    verify_codes(portal, enrollment_id=enrollment_id, code1=code1, code2=code2, actor=NEW_HIRE)
    return seed


def has_login_profile(iam_client: Any, name: str) -> bool:
    try:
        iam_client.get_login_profile(UserName=name)
    except iam_client.exceptions.NoSuchEntityException:
        return False
    return True


def unassigned_serials(iam_client: Any) -> list[str]:
    devices = iam_client.list_virtual_mfa_devices(AssignmentStatus="Unassigned")
    return [d["SerialNumber"] for d in devices["VirtualMFADevices"]]


def _certificate_and_ssh_key(name: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    ssh = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return pem, ssh.decode()


MANAGED_TAGS = [{"Key": "iam-onboard:managed", "Value": "true"}]


def build_busy_user(
    iam_client: Any, name: str, *, managed: bool = True, device_path: str = "/iam-onboard/"
) -> dict[str, Any]:
    """A user with one of everything DeleteUser refuses to leave behind (two keys, two groups);
    `managed`: tagged as the portal's (as an adopted user is), else one the portal never saw;
    `device_path`: its MFA device made by the portal (its path), or by someone else ("/")."""
    tags = MANAGED_TAGS + [{"Key": "iam-onboard:email", "Value": f"{name}@example.com"}]
    iam_client.create_user(UserName=name, Tags=tags if managed else [])
    iam_client.create_login_profile(UserName=name, Password="Sandbox-Passw0rd!")
    keys = [iam_client.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"] for _ in "ab"]
    device = iam_client.create_virtual_mfa_device(VirtualMFADeviceName=name, Path=device_path)[
        "VirtualMFADevice"
    ]
    seed = device["Base32StringSeed"].decode()
    code1, code2 = codes(seed, sandbox_totp.now())  # the clock the test gave the sandbox
    iam_client.enable_mfa_device(
        UserName=name,
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=code1,
        AuthenticationCode2=code2,
    )
    for group in ("Developers", "ReadOnly"):
        iam_client.add_user_to_group(UserName=name, GroupName=group)
    iam_client.put_user_policy(
        UserName=name,
        PolicyName="scratch-bucket",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":"s3:ListBucket","Resource":"arn:aws:s3:::scratch"}]}',
    )
    policy = iam_client.create_policy(
        PolicyName="read-logs",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":"logs:GetLogEvents","Resource":"*"}]}',
    )["Policy"]["Arn"]
    iam_client.attach_user_policy(UserName=name, PolicyArn=policy)
    pem, ssh = _certificate_and_ssh_key(name)
    cert_id = iam_client.upload_signing_certificate(UserName=name, CertificateBody=pem)[
        "Certificate"
    ]["CertificateId"]
    ssh_id = iam_client.upload_ssh_public_key(UserName=name, SSHPublicKeyBody=ssh)["SSHPublicKey"][
        "SSHPublicKeyId"
    ]
    return {
        "keys": keys,
        "device": device["SerialNumber"],
        "policy": policy,
        "cert": cert_id,
        "ssh": ssh_id,
    }

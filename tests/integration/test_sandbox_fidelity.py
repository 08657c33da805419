"""The sandbox over real HTTP behaves like AWS IAM where plain moto does not.

Every test here fails on plain moto; test_plain_moto_fails_these_checks proves it for two.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pyotp
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.sandbox import SANDBOX_ACCOUNT_ID, SANDBOX_CREDENTIALS, Sandbox, start_sandbox

Iam = Any  # botocore's client class is generated at runtime


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with start_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def iam(box: Sandbox) -> Iam:
    box.reset()
    return client(box)


def client(sandbox: Sandbox) -> Iam:
    return boto3.client(
        "iam", endpoint_url=sandbox.url, region_name="us-east-1", **SANDBOX_CREDENTIALS
    )


def aws_error(call: Callable[..., Any], **params: Any) -> tuple[str, int]:
    """The AWS error code and HTTP status of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def new_device(iam: Iam, name: str) -> tuple[str, str]:
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
    return device["SerialNumber"], device["Base32StringSeed"].decode()


def codes(seed: str, steps_from_now: int = 0) -> tuple[str, str]:
    """Two consecutive codes, as an authenticator app shows them."""
    totp = pyotp.TOTP(seed)
    when = time.time() + 30 * steps_from_now
    return totp.at(when), totp.at(when + 30)


def enable(iam: Iam, user: str, serial: str, pair: tuple[str, str]) -> None:
    iam.enable_mfa_device(
        UserName=user, SerialNumber=serial, AuthenticationCode1=pair[0], AuthenticationCode2=pair[1]
    )


def assigned_serials(iam: Iam) -> list[str]:
    devices = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
    return [d["SerialNumber"] for d in devices]


# --- the server itself -----------------------------------------------------------------


def test_sandbox_answers_on_loopback_and_stop_frees_the_port() -> None:
    sandbox = start_sandbox()
    assert sandbox.host == "127.0.0.1" and sandbox.port > 0
    assert sandbox.url == f"http://127.0.0.1:{sandbox.port}"
    user = client(sandbox).create_user(UserName="probe")["User"]
    assert user["Arn"] == f"arn:aws:iam::{SANDBOX_ACCOUNT_ID}:user/probe"
    sandbox.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sandbox.port), timeout=1)
    # Nothing holds the port any more. Another process (a pytest-xdist worker) may be given
    # the freed port for a moment as the local end of a connection of its own: retry a while.
    deadline = time.monotonic() + 5
    while True:
        try:
            with socket.socket() as again:
                again.bind(("127.0.0.1", sandbox.port))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_sandbox_refuses_to_listen_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        start_sandbox(host="0.0.0.0")


def test_starting_on_a_taken_port_fails_instead_of_hanging(box: Sandbox) -> None:
    with pytest.raises(OSError):
        start_sandbox(port=box.port)


def test_reset_wipes_iam_state(box: Sandbox, iam: Iam) -> None:
    iam.create_user(UserName="gone-after-reset")
    box.reset()
    assert iam.list_users()["Users"] == []


# --- EnableMFADevice ---------------------------------------------------------------------


def test_enable_mfa_rejects_codes_not_from_the_device(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    serial, seed = new_device(iam, "alice")
    other_seed = pyotp.random_base32()
    wrong = [("123456", "654321"), codes(other_seed), codes(seed)[::-1], (codes(seed)[0],) * 2]
    for pair in wrong:
        assert aws_error(
            iam.enable_mfa_device,
            UserName="alice",
            SerialNumber=serial,
            AuthenticationCode1=pair[0],
            AuthenticationCode2=pair[1],
        ) == ("InvalidAuthenticationCode", 403)
    assert iam.list_mfa_devices(UserName="alice")["MFADevices"] == []
    assert assigned_serials(iam) == []


def test_enable_mfa_rejects_stale_and_future_codes(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    serial, seed = new_device(iam, "alice")
    for steps in (-10, -4, 3, 10):
        with pytest.raises(ClientError, match="InvalidAuthenticationCode"):
            enable(iam, "alice", serial, codes(seed, steps))


def test_enable_mfa_accepts_consecutive_codes_sent_a_little_late(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    serial, seed = new_device(iam, "alice")
    enable(iam, "alice", serial, codes(seed, -1))  # typed the second code as it appeared
    devices = iam.list_mfa_devices(UserName="alice")["MFADevices"]
    assert [d["SerialNumber"] for d in devices] == [serial]
    assert assigned_serials(iam) == [serial]


def test_enable_mfa_with_an_unknown_serial_is_no_such_entity(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    missing = f"arn:aws:iam::{SANDBOX_ACCOUNT_ID}:mfa/nobody"
    error = aws_error(
        iam.enable_mfa_device,
        UserName="alice",
        SerialNumber=missing,
        AuthenticationCode1="123456",
        AuthenticationCode2="234567",
    )
    assert error == ("NoSuchEntity", 404)
    assert iam.list_mfa_devices(UserName="alice")["MFADevices"] == []


def test_a_device_assigned_to_one_user_cannot_be_enabled_for_another(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    iam.create_user(UserName="mallory")
    serial, seed = new_device(iam, "alice")
    enable(iam, "alice", serial, codes(seed))
    pair = codes(seed)
    error = aws_error(
        iam.enable_mfa_device,
        UserName="mallory",
        SerialNumber=serial,
        AuthenticationCode1=pair[0],
        AuthenticationCode2=pair[1],
    )
    assert error == ("EntityAlreadyExists", 409)
    assert iam.list_mfa_devices(UserName="mallory")["MFADevices"] == []
    device = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"][0]
    assert device["User"]["UserName"] == "alice"


def test_a_ninth_mfa_device_exceeds_the_limit(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    for n in range(8):
        serial, seed = new_device(iam, f"alice-{n}")
        enable(iam, "alice", serial, codes(seed))
    serial, seed = new_device(iam, "alice-8")
    pair = codes(seed)
    error = aws_error(
        iam.enable_mfa_device,
        UserName="alice",
        SerialNumber=serial,
        AuthenticationCode1=pair[0],
        AuthenticationCode2=pair[1],
    )
    assert error == ("LimitExceeded", 409)
    assert len(iam.list_mfa_devices(UserName="alice")["MFADevices"]) == 8


# --- deleting devices and users ------------------------------------------------------------


def test_an_assigned_virtual_device_cannot_be_deleted_until_deactivated(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    serial, seed = new_device(iam, "alice")
    enable(iam, "alice", serial, codes(seed))
    assert aws_error(iam.delete_virtual_mfa_device, SerialNumber=serial) == ("DeleteConflict", 409)
    assert assigned_serials(iam) == [serial]
    iam.deactivate_mfa_device(UserName="alice", SerialNumber=serial)
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert iam.list_virtual_mfa_devices()["VirtualMFADevices"] == []


@pytest.fixture(scope="module")
def certificate_and_ssh_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    ssh = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return pem, ssh.decode()


def _mfa_device(iam: Iam, _: tuple[str, str]) -> None:
    serial, seed = new_device(iam, "alice")
    enable(iam, "alice", serial, codes(seed))


def _group(iam: Iam, _: tuple[str, str]) -> None:
    iam.create_group(GroupName="Developers")
    iam.add_user_to_group(GroupName="Developers", UserName="alice")


def _managed_policy(iam: Iam, _: tuple[str, str]) -> None:
    document = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'
    )
    arn = iam.create_policy(PolicyName="p", PolicyDocument=document)["Policy"]["Arn"]
    iam.attach_user_policy(UserName="alice", PolicyArn=arn)


BLOCKERS: dict[str, Callable[[Iam, tuple[str, str]], Any]] = {
    "login profile": lambda iam, _: iam.create_login_profile(
        UserName="alice", Password="Pw-1-xyzABC"
    ),
    "access key": lambda iam, _: iam.create_access_key(UserName="alice"),
    "signing certificate": lambda iam, pem_ssh: iam.upload_signing_certificate(
        UserName="alice", CertificateBody=pem_ssh[0]
    ),
    "ssh public key": lambda iam, pem_ssh: iam.upload_ssh_public_key(
        UserName="alice", SSHPublicKeyBody=pem_ssh[1]
    ),
    "service-specific credential": lambda iam, _: iam.create_service_specific_credential(
        UserName="alice", ServiceName="codecommit.amazonaws.com"
    ),
    "mfa device": _mfa_device,
    "group membership": _group,
    "inline policy": lambda iam, _: iam.put_user_policy(
        UserName="alice",
        PolicyName="inline",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}',
    ),
    "attached managed policy": _managed_policy,
}


@pytest.mark.parametrize("blocker", list(BLOCKERS))
def test_delete_user_conflicts_while_anything_is_attached(
    iam: Iam, blocker: str, certificate_and_ssh_key: tuple[str, str]
) -> None:
    iam.create_user(UserName="alice")
    BLOCKERS[blocker](iam, certificate_and_ssh_key)
    assert aws_error(iam.delete_user, UserName="alice") == ("DeleteConflict", 409)
    assert iam.get_user(UserName="alice")["User"]["UserName"] == "alice"


def test_delete_user_succeeds_once_nothing_is_attached(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    iam.create_login_profile(UserName="alice", Password="Pw-1-xyzABC")
    cred = iam.create_service_specific_credential(
        UserName="alice", ServiceName="codecommit.amazonaws.com"
    )["ServiceSpecificCredential"]
    listed = iam.list_service_specific_credentials(UserName="alice")["ServiceSpecificCredentials"]
    assert [c["ServiceSpecificCredentialId"] for c in listed] == [
        cred["ServiceSpecificCredentialId"]
    ]
    iam.delete_login_profile(UserName="alice")
    iam.delete_service_specific_credential(
        UserName="alice", ServiceSpecificCredentialId=cred["ServiceSpecificCredentialId"]
    )
    iam.delete_user(UserName="alice")
    assert aws_error(iam.get_user, UserName="alice") == ("NoSuchEntity", 404)


# --- users and login profiles --------------------------------------------------------------


def test_login_profile_keeps_password_reset_required(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    created = iam.create_login_profile(
        UserName="alice", Password="Pw-1-xyzABC", PasswordResetRequired=True
    )
    assert created["LoginProfile"]["PasswordResetRequired"] is True
    assert iam.get_login_profile(UserName="alice")["LoginProfile"]["PasswordResetRequired"] is True


def test_update_login_profile_without_password_keeps_the_profile(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    iam.create_login_profile(UserName="alice", Password="Pw-1-xyzABC")
    iam.update_login_profile(UserName="alice", PasswordResetRequired=True)
    profile = iam.get_login_profile(UserName="alice")["LoginProfile"]
    assert profile["PasswordResetRequired"] is True


def test_user_names_are_unique_ignoring_case(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    assert aws_error(iam.create_user, UserName="Alice") == ("EntityAlreadyExists", 409)
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["alice"]


# --- pagination ------------------------------------------------------------------------------


def page_sizes(call: Callable[..., Any], key: str, **params: Any) -> tuple[list[int], list[Any]]:
    """Follow Marker by hand: the size of every page and all the items."""
    sizes, items, marker = [], [], None
    while True:
        page = call(**params, **({"Marker": marker} if marker else {}))
        sizes.append(len(page[key]))
        items += page[key]
        if not page["IsTruncated"]:
            assert "Marker" not in page
            return sizes, items
        marker = page["Marker"]


def test_list_users_honours_max_items_and_marker(iam: Iam) -> None:
    names = [f"user{n:02}" for n in range(7)]
    for name in names:
        iam.create_user(UserName=name)
    sizes, users = page_sizes(iam.list_users, "Users", MaxItems=3)
    assert sizes == [3, 3, 1]
    assert sorted(u["UserName"] for u in users) == names
    sizes, _ = page_sizes(iam.list_users, "Users", MaxItems=7)
    assert sizes == [7]  # an exact fit ends without an empty page


def test_list_users_pages_default_to_100(iam: Iam) -> None:
    for n in range(101):
        iam.create_user(UserName=f"user{n:03}")
    first = iam.list_users()
    assert len(first["Users"]) == 100 and first["IsTruncated"] is True
    pages = list(iam.get_paginator("list_users").paginate())
    assert [len(p["Users"]) for p in pages] == [100, 1]


def test_list_users_marker_survives_deleting_the_last_user_seen(iam: Iam) -> None:
    for n in range(4):
        iam.create_user(UserName=f"user{n}")
    first = iam.list_users(MaxItems=2)
    iam.delete_user(UserName=first["Users"][-1]["UserName"])
    rest = iam.list_users(MaxItems=2, Marker=first["Marker"])
    assert [u["UserName"] for u in first["Users"] + rest["Users"]] == [
        "user0",
        "user1",
        "user2",
        "user3",
    ]


def test_get_group_pages_its_members(iam: Iam) -> None:
    iam.create_group(GroupName="MFA")
    for n in range(5):
        iam.create_user(UserName=f"member{n}")
        iam.add_user_to_group(GroupName="MFA", UserName=f"member{n}")
    sizes, users = page_sizes(iam.get_group, "Users", GroupName="MFA", MaxItems=2)
    assert sizes == [2, 2, 1]
    assert sorted(u["UserName"] for u in users) == [f"member{n}" for n in range(5)]


def test_list_mfa_devices_pages(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    serials = []
    for n in range(3):
        serial, seed = new_device(iam, f"alice-{n}")
        enable(iam, "alice", serial, codes(seed))
        serials.append(serial)
    sizes, devices = page_sizes(iam.list_mfa_devices, "MFADevices", UserName="alice", MaxItems=2)
    assert sizes == [2, 1]
    assert sorted(d["SerialNumber"] for d in devices) == sorted(serials)


def test_list_virtual_mfa_devices_pages_without_seeds_or_empty_last_page(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    serials = [new_device(iam, f"device-{n}")[0] for n in range(4)]
    sizes, devices = page_sizes(iam.list_virtual_mfa_devices, "VirtualMFADevices", MaxItems=2)
    assert sizes == [2, 2]
    assert sorted(d["SerialNumber"] for d in devices) == serials
    # AWS hands out the seed once, at creation; a list must not leak it.
    assert all("Base32StringSeed" not in d and "QRCodePNG" not in d for d in devices)
    serial, seed = new_device(iam, "alice")
    enable(iam, "alice", serial, codes(seed))
    assert assigned_serials(iam) == [serial]
    unassigned = iam.list_virtual_mfa_devices(AssignmentStatus="Unassigned")["VirtualMFADevices"]
    assert sorted(d["SerialNumber"] for d in unassigned) == serials


# --- credential report -----------------------------------------------------------------------


def test_credential_report_shows_passwords_and_mfa(iam: Iam) -> None:
    iam.create_user(UserName="alice")
    iam.create_login_profile(UserName="alice", Password="Pw-1-xyzABC")
    serial, seed = new_device(iam, "alice")
    enable(iam, "alice", serial, codes(seed))
    iam.create_user(UserName="bob")

    assert iam.generate_credential_report()["State"] == "STARTED"
    assert iam.generate_credential_report()["State"] == "COMPLETE"
    report = iam.get_credential_report()
    assert report["ReportFormat"] == "text/csv"
    assert abs(report["GeneratedTime"] - datetime.now(UTC)) < timedelta(minutes=5)
    rows = {row["user"]: row for row in csv.DictReader(io.StringIO(report["Content"].decode()))}

    assert set(rows) == {"<root_account>", "alice", "bob"}  # AWS always lists the root first
    assert rows["alice"]["mfa_active"] == "true"
    assert rows["alice"]["password_enabled"] == "true"
    assert rows["alice"]["password_last_used"] == "no_information"
    assert rows["bob"]["mfa_active"] == "false"
    assert rows["bob"]["password_enabled"] == "false"
    assert rows["bob"]["password_last_used"] == "N/A"
    assert rows["bob"]["password_last_changed"] == "N/A"


# --- the checks above can fail ---------------------------------------------------------------


def test_plain_moto_fails_these_checks(box: Sandbox) -> None:
    box.reset()
    with start_sandbox(fidelity=False) as plain:
        iam = client(plain)
        iam.create_user(UserName="alice")
        serial, _ = new_device(iam, "alice")
        enable(iam, "alice", serial, ("123456", "654321"))  # moto takes any codes
        iam.create_login_profile(UserName="alice", Password="Pw-1-xyzABC")
        iam.delete_user(UserName="alice")  # moto ignores the login profile and the device
    # Stopping the plain server restored the fixes for everyone else.
    iam = client(box)
    iam.create_user(UserName="bob")
    serial, _ = new_device(iam, "bob")
    with pytest.raises(ClientError, match="InvalidAuthenticationCode"):
        enable(iam, "bob", serial, ("123456", "654321"))

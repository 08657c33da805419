"""The commands as a newcomer runs them: the demo, then invite/bootstrap/doctor against it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import httpx
import pytest

from tests.helpers import CLI, Demo, clean_env, start_demo


@pytest.fixture
def demo(tmp_path: Path):
    d = start_demo(tmp_path)
    yield d
    d.stop()


def _iam(demo: Demo):
    return boto3.client(
        "iam",
        endpoint_url=demo.iam_url,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )


def test_demo_serves_health_and_a_bootstrapped_sandbox(demo: Demo):
    assert httpx.get(demo.portal_url + "/healthz").status_code == 200
    ready = httpx.get(demo.portal_url + "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "iam": "ok"}
    attached = _iam(demo).list_attached_group_policies(GroupName="MFA")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["MFA"]
    headers = httpx.get(demo.portal_url + "/healthz").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_invite_from_the_cli_acts_on_the_demo(demo: Demo, tmp_path: Path):
    result = demo.cli("invite", "newhire", "--email", "newhire@example.com")
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip().splitlines()[-1]
    assert link.startswith(demo.portal_url + "/enroll/")
    iam = _iam(demo)
    groups = iam.list_groups_for_user(UserName="newhire")["Groups"]
    assert [g["GroupName"] for g in groups] == ["MFA"]
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_login_profile(UserName="newhire")
    assert iam.list_access_keys(UserName="newhire")["AccessKeyMetadata"] == []

    again = demo.cli("invite", "newhire", "--email", "newhire@example.com")
    assert again.returncode == 1
    assert len(again.stderr.strip().splitlines()) == 1
    assert "already invited" in again.stderr
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["newhire"]

    token = link.rsplit("/", 1)[1]
    db_file = Path(demo.database_url.removeprefix("sqlite:///"))
    for path in db_file.parent.glob(db_file.name + "*"):
        assert token.encode() not in path.read_bytes()

    status = demo.cli("status", "--json")
    assert json.loads(status.stdout)[0]["status"] == "invited"  # the directory status


def test_bootstrap_twice_and_doctor_against_the_demo(demo: Demo):
    dry = demo.cli("bootstrap", "--dry-run")
    assert dry.returncode == 0 and "nothing was changed" in dry.stdout
    again = demo.cli("bootstrap")
    assert "Nothing to change" in again.stdout
    doctor = demo.cli("doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert "All checks passed" in doctor.stdout


@pytest.mark.slow  # starts iam-onboard processes
def test_bad_setting_gives_one_clear_line(tmp_path: Path):
    env = clean_env(IAM_ONBOARD_INVITE_TTL_HOURS="soon")
    result = subprocess.run(
        [*CLI, "status"], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "IAM_ONBOARD_INVITE_TTL_HOURS" in result.stderr


@pytest.mark.slow  # starts iam-onboard processes
def test_serve_refuses_the_default_secret(tmp_path: Path):
    env = clean_env(IAM_ONBOARD_DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    result = subprocess.run(
        [*CLI, "serve"], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "IAM_ONBOARD_SECRET_KEY is not set" in result.stderr


@pytest.mark.slow  # starts iam-onboard processes
def test_serve_refuses_the_default_secret_in_the_sandbox_too(tmp_path: Path):
    env = clean_env(
        IAM_ONBOARD_DATABASE_URL=f"sqlite:///{tmp_path}/x.db", IAM_ONBOARD_SANDBOX="true"
    )
    result = subprocess.run(
        [*CLI, "serve"], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "IAM_ONBOARD_SECRET_KEY is not set" in result.stderr


def test_secret_from_a_file(tmp_path: Path):
    from app.config import load_settings

    secret_file = tmp_path / "secret"
    secret_file.write_text("s" * 48 + "\n")
    import os

    os.environ["IAM_ONBOARD_SECRET_KEY_FILE"] = str(secret_file)
    try:
        assert load_settings().secret_key == "s" * 48
    finally:
        del os.environ["IAM_ONBOARD_SECRET_KEY_FILE"]


def test_assignable_groups_read_as_a_comma_list_or_json(monkeypatch: pytest.MonkeyPatch):
    from app.config import load_settings

    monkeypatch.setenv("IAM_ONBOARD_ASSIGNABLE_GROUPS", "Developers, ReadOnly")
    assert load_settings().assignable_groups == ["Developers", "ReadOnly"]
    monkeypatch.setenv("IAM_ONBOARD_ASSIGNABLE_GROUPS", '["Developers"]')
    assert load_settings().assignable_groups == ["Developers"]


def _policy(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "policy", *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


@pytest.mark.slow  # starts iam-onboard processes
def test_policy_prints_each_policy_for_the_current_settings(tmp_path: Path):
    runtime = _policy(
        tmp_path, "runtime", IAM_ONBOARD_MFA_GROUP="Enforce", IAM_ONBOARD_ASSIGNABLE_GROUPS="Dev"
    )
    assert runtime.returncode == 0, runtime.stderr
    doc = json.loads(runtime.stdout)
    membership = next(s for s in doc["Statement"] if "iam:AddUserToGroup" in s["Action"])
    assert membership["Resource"] == [
        "arn:aws:iam::*:group/Enforce",
        "arn:aws:iam::*:group/*/Enforce",
        "arn:aws:iam::*:group/Dev",
        "arn:aws:iam::*:group/*/Dev",
    ]
    assert any(s["Effect"] == "Deny" for s in doc["Statement"])

    bootstrap = _policy(tmp_path, "bootstrap", "--format", "json", IAM_ONBOARD_MFA_POLICY="P")
    assert bootstrap.returncode == 0, bootstrap.stderr
    assert "arn:aws:iam::*:policy/P" in bootstrap.stdout
    assert "policy/*" not in bootstrap.stdout

    mfa = _policy(tmp_path, "mfa")
    assert mfa.returncode == 0 and mfa.stderr == ""
    deny = next(s for s in json.loads(mfa.stdout)["Statement"] if "NotAction" in s)
    assert "iam:CreateAccessKey" not in deny["NotAction"]


@pytest.mark.slow  # starts iam-onboard processes
def test_policy_as_a_cloudformation_resource(tmp_path: Path):
    plain = json.loads(_policy(tmp_path, "runtime").stdout)
    result = _policy(tmp_path, "runtime", "--format", "cloudformation")
    assert result.returncode == 0, result.stderr
    fragment = json.loads(result.stdout)
    assert fragment["Type"] == "AWS::IAM::ManagedPolicy"
    assert fragment["Properties"]["PolicyDocument"] == plain
    assert "iam-onboard:managed" in fragment["Properties"]["Description"]


@pytest.mark.slow  # starts iam-onboard processes
def test_policy_refuses_an_unknown_kind_or_format(tmp_path: Path):
    for args in (["admin"], ["mfa", "--format", "yaml"], []):
        result = _policy(tmp_path, *args)
        assert result.returncode == 2, args
        assert result.stdout == ""
        assert "usage:" in result.stderr

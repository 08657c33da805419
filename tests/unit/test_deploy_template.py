"""The CloudFormation stack (deploy/iam-onboard.yaml) against the code it deploys.

cfn-lint and checkov check the template itself (`make deploy-check`); these tests check what
they cannot know: that the roles hold exactly the policies the code needs, and that every
variable handed to the containers is a setting the portal reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Settings
from tests.helpers import clean_env

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "iam-onboard.yaml"
CLI = [sys.executable, "-m", "app.cli"]

# Settings another branch adds; the template may set them before they land here.
PENDING_SETTINGS: set[str] = set()


class _TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags: !Ref x -> {"Ref": x}, !Sub s -> {"Fn::Sub": s}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _tag)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_TemplateLoader)  # noqa: S506


def template_settings_env(template: dict[str, Any]) -> dict[str, str]:
    """The IAM_ONBOARD_* settings the stack gives the portal when deployed with its defaults."""
    parameters = template["Parameters"]
    env: dict[str, str] = {}
    for item in _container(template, "ServiceTaskDefinition")["Environment"]:
        value = item["Value"]
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
            value = str(parameters[value["Ref"]].get("Default", ""))
        if isinstance(value, str):
            env[item["Name"]] = value
    return env


def expected_policy(kind: str, settings_env: dict[str, str]) -> dict[str, Any]:
    """What `iam-onboard policy KIND --format cloudformation` prints for these settings."""
    run = subprocess.run(
        [*CLI, "policy", kind, "--format", "cloudformation"],
        env=clean_env(IAM_ONBOARD_SECRET_KEY="x" * 40, **settings_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    parsed: dict[str, Any] = json.loads(run.stdout)
    return parsed


def _container(template: dict[str, Any], task_definition: str) -> dict[str, Any]:
    definitions = template["Resources"][task_definition]["Properties"]["ContainerDefinitions"]
    assert len(definitions) == 1
    return definitions[0]


def _policies_attached_to(template: dict[str, Any], role: str) -> list[str]:
    attached = []
    for name, resource in template["Resources"].items():
        if resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            if {"Ref": role} in resource["Properties"].get("Roles", []):
                attached.append(name)
    return attached


@pytest.mark.slow  # starts iam-onboard processes
@pytest.mark.parametrize(
    ("kind", "resource", "role"),
    [("runtime", "RuntimePolicy", "TaskRole"), ("bootstrap", "BootstrapPolicy", "BootstrapRole")],
)
def test_each_role_holds_exactly_the_codes_policy(kind: str, resource: str, role: str):
    template = load_template()
    expected = expected_policy(kind, template_settings_env(template))
    actual = template["Resources"][resource]
    assert actual["Type"] == expected["Type"]
    for key, value in expected["Properties"].items():
        assert actual["Properties"][key] == value, f"{resource}.{key} differs from the CLI's"
    # Nothing else: no inline policy, no other managed policy, no other attachment.
    role_properties = template["Resources"][role]["Properties"]
    assert "Policies" not in role_properties
    assert "ManagedPolicyArns" not in role_properties
    assert _policies_attached_to(template, role) == [resource]


def test_the_portal_runs_as_the_task_role_and_bootstrap_as_its_own():
    template = load_template()
    resources = template["Resources"]
    service = resources["ServiceTaskDefinition"]["Properties"]
    bootstrap = resources["BootstrapTaskDefinition"]["Properties"]
    assert service["TaskRoleArn"] == {"Fn::GetAtt": ["TaskRole", "Arn"]}
    assert bootstrap["TaskRoleArn"] == {"Fn::GetAtt": ["BootstrapRole", "Arn"]}
    assert _container(template, "ServiceTaskDefinition")["Command"][:2] == ["iam-onboard", "serve"]
    assert _container(template, "BootstrapTaskDefinition")["Command"] == [
        "iam-onboard",
        "bootstrap",
    ]
    assert resources["Service"]["Properties"]["TaskDefinition"] == {"Ref": "ServiceTaskDefinition"}
    # Upgrades migrate with the next release's image while the service keeps the current one.
    assert _container(template, "ServiceTaskDefinition")["Image"] == {"Ref": "ImageUri"}
    assert _container(template, "BootstrapTaskDefinition")["Image"] == {
        "Fn::If": ["HasReleaseImage", {"Ref": "ReleaseImageUri"}, {"Ref": "ImageUri"}]
    }


def test_secrets_reach_the_tasks_through_secrets_manager_only():
    template = load_template()
    for task_definition in ("ServiceTaskDefinition", "BootstrapTaskDefinition"):
        container = _container(template, task_definition)
        plain = {item["Name"] for item in container["Environment"]}
        secret = {item["Name"] for item in container["Secrets"] if "Name" in item}
        assert {"IAM_ONBOARD_SECRET_KEY", "IAM_ONBOARD_DATABASE_URL"} <= secret
        assert not plain & {"IAM_ONBOARD_SECRET_KEY", "IAM_ONBOARD_DATABASE_URL"}
        assert not any(name.startswith("IAM_ONBOARD_SMTP") for name in plain)
    resources = template["Resources"]
    assert resources["AppSecret"]["Type"] == "AWS::SecretsManager::Secret"
    assert "SecretString" not in resources["AppSecret"]["Properties"]  # generated by AWS


def test_bootstrap_runs_with_the_portals_settings():
    template = load_template()
    service = _container(template, "ServiceTaskDefinition")
    bootstrap = _container(template, "BootstrapTaskDefinition")
    assert bootstrap["Environment"] == service["Environment"]
    assert bootstrap["Secrets"] == service["Secrets"]


def test_every_variable_handed_to_the_containers_is_a_setting_the_portal_reads():
    template = load_template()
    container = _container(template, "ServiceTaskDefinition")
    names = [item["Name"] for item in container["Environment"]]
    names += [item["Name"] for item in container["Secrets"] if "Name" in item]
    names += [
        branch["Name"]
        for item in container["Secrets"]
        if "Fn::If" in item
        for branch in item["Fn::If"][1:]
        if isinstance(branch, dict) and "Name" in branch
    ]
    fields = {f"IAM_ONBOARD_{name.upper()}" for name in Settings.model_fields}
    portal_names = {n for n in names if n.startswith("IAM_ONBOARD_")}
    assert "IAM_ONBOARD_SMTP_URL" in portal_names
    assert portal_names - fields - PENDING_SETTINGS == set()
    base_url = next(i["Value"] for i in container["Environment"] if i["Name"].endswith("BASE_URL"))
    assert base_url == {"Fn::Sub": "https://${DomainName}"}  # links are https, from the domain


def test_the_containers_run_as_non_root_on_a_read_only_root_filesystem():
    template = load_template()
    for task_definition in ("ServiceTaskDefinition", "BootstrapTaskDefinition"):
        container = _container(template, task_definition)
        assert container["ReadonlyRootFilesystem"] is True
        assert container["User"].split(":")[0] not in ("0", "root")
        assert [m["ContainerPath"] for m in container["MountPoints"]] == ["/tmp"]


def test_two_tasks_behind_https_with_the_readiness_health_check():
    template = load_template()
    resources = template["Resources"]
    assert template["Parameters"]["DesiredCount"]["Default"] == 2
    assert resources["TargetGroup"]["Properties"]["HealthCheckPath"] == "/readyz"
    https = resources["HttpsListener"]["Properties"]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    database = resources["Database"]["Properties"]
    assert database["StorageEncrypted"] is True
    assert database["PubliclyAccessible"] is False
    assert database["BackupRetentionPeriod"] == {"Ref": "BackupRetentionDays"}
    assert "PortalUrl" in template["Outputs"]

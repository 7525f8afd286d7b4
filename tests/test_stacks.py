"""Every Pulumi.<stack>.yaml in the repo: the real program runs with it and creates what the file says."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from harness.stack_values import TEST_SECRETS
from tests.pulumi_helpers import container, kube, only, unwrap
from tools.mocks import ProgramRun
from tools.render import run_main_program
from tools.stack_config import REPO_ROOT, load_stack_config, stack_file_config, stack_names
from webapp_platform.config.errors import ConfigError

STACKS = stack_names()


def _file(stack: str) -> dict[str, Any]:
    """The stack file's settings by their key within the project (`replicas`, not `webapp:replicas`)."""
    return {key.split(":", 1)[1]: value for key, value in stack_file_config(stack).items()}


def _run(stack: str) -> tuple[ProgramRun, dict[str, Any]]:
    config = load_stack_config(stack).with_secrets(TEST_SECRETS)
    rendered = run_main_program(config)
    return rendered.run, rendered.outputs


def test_the_three_environments_exist() -> None:
    assert set(STACKS) >= {"dev", "staging", "prod"}


@pytest.mark.parametrize("stack", STACKS)
def test_stack_creates_what_its_file_says(stack: str) -> None:
    declared = _file(stack)
    run, outputs = _run(stack)
    deployment = only(run, "Deployment")
    spec = container(deployment)

    assert deployment.inputs["spec"]["replicas"] == declared["replicas"]
    image = declared["image"]
    assert spec["image"] == f"{image['repository']}:{image['tag']}@{image['digest']}", "every stack runs by digest"
    assert spec["resources"] == declared["resources"]
    assert deployment.inputs["metadata"]["namespace"] == declared["namespace"]
    assert outputs["namespace"] == declared["namespace"]
    assert outputs["image"] == spec["image"]
    assert outputs["deployment_name"] == deployment.object_name
    assert outputs["service_name"] == only(run, "Service").object_name

    ingress = declared.get("ingress", {})
    if ingress.get("enabled"):
        rules = only(run, "Ingress").inputs["spec"]["rules"]
        assert [rule["host"] for rule in rules] == ingress["hosts"]
        assert outputs["url"].endswith(f"://{ingress['hosts'][0]}/")
    else:
        assert kube(run, "Ingress") == []
    route = declared.get("httpRoute", {})
    if route.get("enabled"):
        spec = only(run, "HTTPRoute").inputs["spec"]
        assert spec["hostnames"] == route["hostnames"]
        assert spec["parentRefs"][0]["name"] == route["gateway"]["name"]
        assert outputs["url"] == f"{route['scheme']}://{route['hostnames'][0]}/"
    else:
        assert kube(run, "HTTPRoute") == []

    metrics = declared.get("metrics", {})
    dashboards = [c for c in kube(run, "ConfigMap") if c.object_name.endswith("-dashboard")]
    assert len(dashboards) == int(bool(metrics.get("dashboard")))
    assert len(kube(run, "PrometheusRule")) == int(bool(metrics.get("alerts")))
    (app_config,) = [c for c in kube(run, "ConfigMap") if c not in dashboards]
    assert app_config.inputs["data"] == {key: str(value) for key, value in declared.get("appConfig", {}).items()}
    secret = only(run, "Secret").inputs["stringData"]
    assert unwrap(secret) == TEST_SECRETS
    assert TEST_SECRETS["DATABASE_PASSWORD"] not in repr(outputs)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_tags_are_pinned_semantic_versions(stack: str) -> None:
    tag = _file(stack)["image"]["tag"]
    assert tag != "latest"
    assert len(str(tag).split(".")) == 3


def _plain_values(value: Any, path: str) -> list[str]:
    """Paths of every leaf under `value` that is not a `secure:` ciphertext."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        return []
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _plain_values(item, f"{path}.{key}")]
    return [path]


@pytest.mark.parametrize("stack", STACKS)
def test_stack_commits_secrets_only_as_ciphertext(stack: str) -> None:
    # `pulumi config set --secret` writes `secure:` ciphertext into the stack file: committing that is
    # Pulumi's way to keep a stack's secrets with its code. A plain value there is a leaked secret.
    plain = _plain_values(_file(stack).get("secrets", {}), "webapp:secrets")
    assert plain == [], f"Pulumi.{stack}.yaml holds plain text at {plain}; use pulumi config set --secret"


def test_plain_value_check_finds_plain_text_beside_ciphertext() -> None:
    secrets = {"DATABASE_PASSWORD": {"secure": "v1:AAAA"}, "API_TOKEN": "hunter2"}
    assert _plain_values(secrets, "webapp:secrets") == ["webapp:secrets.API_TOKEN"]


def test_environments_scale_up_towards_prod() -> None:
    dev, _ = _run("dev")
    staging, _ = _run("staging")
    prod, _ = _run("prod")
    assert only(dev, "Deployment").inputs["spec"]["replicas"] == 1
    assert kube(dev, "PodDisruptionBudget") == []
    assert kube(dev, "HorizontalPodAutoscaler") == []
    assert only(staging, "Deployment").inputs["spec"]["replicas"] == 2
    assert len(kube(staging, "PodDisruptionBudget")) == 1
    assert only(prod, "Deployment").inputs["spec"]["replicas"] == 3
    assert len(kube(prod, "PodDisruptionBudget")) == 1
    hpa = only(prod, "HorizontalPodAutoscaler").inputs["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert only(prod, "Ingress").inputs["spec"]["tls"][0]["secretName"]


@pytest.mark.parametrize("stack", STACKS)
def test_missing_secret_gives_a_clear_error(stack: str) -> None:
    with pytest.raises(ConfigError) as exc:
        run_main_program(load_stack_config(stack))
    assert "webapp:secrets.DATABASE_PASSWORD is missing" in str(exc.value)
    assert f"--stack {stack}" in str(exc.value)


def test_project_file_follows_pulumis_project_rules() -> None:
    """Pulumi.yaml: python runtime on .venv; project config obeys the CLI's validation rules."""
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "webapp"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    python_types = {"integer": int, "string": str, "boolean": bool}
    for key, declaration in project.get("config", {}).items():
        assert ":" not in key or key.startswith("webapp:"), f"{key}: other namespaces need `value`, not types"
        assert not ({"default", "value"} <= set(declaration)), f"{key}: both default and value"
        if "type" in declaration and "default" in declaration:
            assert isinstance(declaration["default"], python_types[declaration["type"]]), key

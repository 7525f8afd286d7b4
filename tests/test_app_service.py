"""AppService, the component other Pulumi languages get through `provider/`: the schema Python's component
provider host infers from it, what it deploys, and inputs it refuses."""

from __future__ import annotations

import tomllib
from typing import Any

import pydantic
import pytest

from tests.pulumi_helpers import container, only, run_components
from tools.stack_config import REPO_ROOT
from webapp_platform.components.app_service import (
    PROVIDER_VERSION,
    AppService,
    AppServiceArgs,
    provider_schema,
    web_service_args,
)

ARGS: dict[str, Any] = {
    "namespace": "hello",
    "repository": "registry.example.com/hello",
    "tag": "1.0.0",
    "port": 9000,
    "liveness_path": "/livez",
    "readiness_path": "/readyz",
    "run_as_user": 20002,
    "replicas": 2,
    "cpu": "100m",
    "memory": "64Mi",
}


def test_the_inferred_schema_offers_app_service_with_its_inputs_and_outputs() -> None:
    resource = provider_schema()["resources"]["webapp:index:AppService"]
    assert resource["isComponent"] is True
    assert sorted(resource["requiredInputs"]) == sorted(
        [
            "namespace",
            "repository",
            "tag",
            "port",
            "livenessPath",
            "readinessPath",
            "runAsUser",
            "replicas",
            "cpu",
            "memory",
        ]
    )
    assert set(resource["inputProperties"]) - set(resource["requiredInputs"]) == {
        "digest",
        "preStopSeconds",
        "imagePullSecrets",
    }
    assert set(resource["properties"]) == {"serviceName", "deploymentName"}


def test_it_deploys_a_one_port_app_with_a_pre_stop_drain() -> None:
    run = run_components(lambda: AppService("hello", AppServiceArgs(**ARGS)))  # type: ignore[typeddict-item]
    spec = container(only(run, "Deployment"))
    assert spec["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert spec["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert spec["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}  # the contract's default
    assert spec["securityContext"]["runAsUser"] == 20002
    assert [r.type for r in run.resources if not r.custom] == ["webapp:index:AppService", "webapp:index:WebService"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("run_as_user", 0, "run_as_user"),
        ("tag", "latest", "'latest' cannot be tracked"),
        ("liveness_path", "livez", "a path starting with '/'"),
        ("port", 70000, "port"),
        ("cpu", "lots", "cpu"),
        ("pre_stop_seconds", 0, "pre_stop_seconds"),
    ],
)
def test_a_bad_input_is_refused_naming_it(field: str, value: Any, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        web_service_args("hello", {**ARGS, field: value})  # type: ignore[typeddict-item]


def test_the_schemas_version_is_the_distributions() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert provider_schema()["version"] == PROVIDER_VERSION == project["version"]

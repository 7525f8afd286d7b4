"""examples/hello: the example program renders the second app by its contract, and the package it imports is a
wheel that holds the components and config alone and imports nothing outside itself."""

from __future__ import annotations

import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.pulumi_helpers import container, kube, only
from tools.mocks import ProgramRun, run_program
from tools.stack_config import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "hello"
CONFIG = {
    "hello:namespace": "hello",
    "hello:repository": "registry.example.com/hello",
    "hello:tag": "1.2.3",
    "hello:imagePullSecrets": '["registry-login"]',
}


@pytest.fixture(scope="module")
def example() -> ProgramRun:
    return run_program(
        lambda: runpy.run_path(str(EXAMPLE / "__main__.py"), run_name="__main__"),
        project="hello",
        stack="dev",
        config=CONFIG,
    )


def test_the_example_runs_hello_by_its_contract(example: ProgramRun) -> None:
    deployment = only(example, "Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    spec = container(deployment)
    assert spec["image"] == "registry.example.com/hello:1.2.3"
    assert spec["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert spec["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert (pod["securityContext"]["runAsUser"], spec["securityContext"]["runAsUser"]) == (20002, 20002)
    assert pod["imagePullSecrets"] == [{"name": "registry-login"}]
    assert [e["name"] for e in spec["env"]] == ["APP_VERSION", "PORT"]
    assert deployment.inputs["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert {r.kind for r in example.resources if r.is_kubernetes} == {
        "ServiceAccount",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "PodDisruptionBudget",
    }
    assert kube(example, "ServiceMonitor") == []
    assert set(example.outputs) == {"service_name", "deployment_name"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution built from this checkout, offline, with the dev virtualenv's pinned setuptools."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("webapp_platform-*.whl")
    return built


def test_the_wheel_holds_the_package_alone(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"webapp_platform"}, top
    assert "webapp_platform/py.typed" in names
    assert "webapp_platform/config/contract.py" in names
    assert not any(name.startswith(("app/", "tests/", "tools/", "harness/")) for name in names)


def test_the_installed_package_imports_nothing_outside_itself(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = (
        "import webapp_platform.components.webapp, webapp_platform.components.web_service, "
        "webapp_platform.config.loading, sys; "
        "assert webapp_platform.components.webapp.__file__.startswith(sys.argv[1]), "
        "webapp_platform.components.webapp.__file__"
    )
    # -P: no checkout directory on sys.path, only the unpacked wheel (and the virtualenv's dependencies).
    result = subprocess.run(
        [sys.executable, "-P", "-c", code, str(tmp_path / "site")],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr

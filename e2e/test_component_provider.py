"""`provider/`, the components for other Pulumi languages, under the built CLI and Python language host: the schema
the CLI gets from the running provider is the one Python's analyzer infers from the components.

The built language host (v3.68, the newest whose Go module the proxy serves) reads a plugin's directory from the
RunPlugin request's deprecated `program` field, which CLI v3.260 no longer sets (it sends `info` and the
working directory): the host runs the plugin from the CLI's working directory. So it serves the provider only when
the CLI runs in the provider's own directory, and a YAML program cannot use it here; a Pulumi CLI installed with its
own language hosts can (docs/own-app.md). The second test pins that limit, so that a newer host shows up as a
failure to act on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from localcluster.pulumi_cli import Workspace
from tools.stack_config import REPO_ROOT
from webapp_platform.components.app_service import provider_schema

EXAMPLE_VENV_BIN = REPO_ROOT / ".engine" / "example-venv" / "venv" / "bin"


@pytest.fixture
def plugin(tmp_path: Path) -> Workspace:
    """A copy of provider/ as the CLI's working directory, with the installed package's Python first on PATH."""
    assert (EXAMPLE_VENV_BIN / "python3").exists(), (
        "no .engine/example-venv: run `make .engine/example-venv/.installed`"
    )
    ws = Workspace.create(tmp_path, program_dir=REPO_ROOT / "provider", with_stacks=False)
    ws.label = "component provider"
    shutil.copy2(REPO_ROOT / "provider" / "PulumiPlugin.yaml", ws.root / "PulumiPlugin.yaml")
    ws.extra_env["PATH"] = f"{EXAMPLE_VENV_BIN}:{ws.environment()['PATH']}"
    ws.extra_env["VIRTUAL_ENV"] = str(EXAMPLE_VENV_BIN.parent)
    return ws


def _schema_json(output: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(output[output.index("\n{") + 1 :] if not output.startswith("{") else output)
    return schema


def test_the_cli_gets_the_inferred_schema_from_the_running_provider(plugin: Workspace) -> None:
    result = plugin.run("pulumi package get-schema .")
    served = _schema_json(result.stdout)
    assert served["name"] == "webapp"
    assert served["version"] == "0.9.0"
    assert served["resources"] == provider_schema()["resources"]


def test_the_built_host_cannot_run_the_provider_from_another_directory(plugin: Workspace, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    original = plugin.root
    plugin.root = elsewhere
    try:
        result = plugin.run(f"pulumi package get-schema {original}", check=False)
    finally:
        plugin.root = original
    assert result.returncode != 0
    assert "can't find '__main__' module" in result.output, result.output[-3000:]

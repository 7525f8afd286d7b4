"""What the end-to-end tests share about stacks: their files, the workflows' commands, the offline render."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

from e2e.github_steps import Runner
from e2e.workflows import action_operation, cli_operation
from tools.stack_config import REPO_ROOT, stack_file_config

SECRET_VALUE = f"e2e-{secrets.token_hex(12)}"
"""The value every e2e stack gets for its secrets: random, so finding it anywhere is a leak."""


def stack_file(stack: str) -> dict[str, Any]:
    """The `config` of Pulumi.<stack>.yaml as committed (the one stack-file reader, `tools.stack_config`'s)."""
    return stack_file_config(stack)


def expected_replicas(file: dict[str, Any]) -> int:
    """The pods a stack runs right after `up`: the autoscaler's minimum, else `replicas`."""
    autoscaling = file.get("webapp:autoscaling", {})
    return int(autoscaling["minReplicas"]) if autoscaling.get("enabled") else int(file["webapp:replicas"])


def action(workflow: str) -> list[str]:
    """The workflow's pulumi/actions operation and options, as e2e.automation arguments."""
    operation, options = action_operation(workflow)
    return [operation, *options]


def cli_preview(workflow: str, runner_temp: Path) -> list[str]:
    """The workflow's `pulumi preview` command line (a `run:` step), as e2e.automation arguments; what it writes to
    `$RUNNER_TEMP` goes to `runner_temp`."""
    operation, options = cli_operation(workflow, "preview", runner_temp)
    return [operation, *options]


DRIFT_STEP = "Preview with refresh, failing on drift"


def drift_job(stack: str, directory: Path, environment: dict[str, str], **context: str) -> Runner:
    """drift.yml's job for `stack` on a stand-in runner under `directory`, in `environment` (a workspace's, which
    names its backend): the workflow's `vars.PULUMI_ORG` is the file backend's organization, and `context` adds the rest
    its steps read."""
    values = {"vars.PULUMI_ORG": "organization", "matrix.stack": stack, **context}
    return Runner("drift.yml", "drift", directory, values, environment)


PROMOTE_STEP = "Promote the image into the stack's config"


def promotion_job(
    stack: str, directory: Path, environment: dict[str, str], *, image: str = "", source: str = ""
) -> Runner:
    """pulumi-up.yml's job for `stack` on a stand-in runner under `directory`: its inputs are an `image` the build
    pushed or a `source` stack to promote from (the workflow's `inputs.image`, `inputs.promote-from`)."""
    values = {
        "vars.PULUMI_ORG": "organization",
        "inputs.stack": stack,
        "inputs.image": image,
        "inputs.promote-from": source,
    }
    return Runner("pulumi-up.yml", "up", directory, values, environment)


def make_render(stack: str, output: Path) -> Path:
    """`make render`'s manifests for `stack` (schema checks on, checkov left to `make test`), in `output`."""
    python = REPO_ROOT / ".venv" / "bin" / "python"
    command = [str(python), "-m", "tools.render", stack, "--no-checkov", "--output", str(output)]
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return output / stack

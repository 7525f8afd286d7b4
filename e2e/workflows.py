"""The Pulumi commands the GitHub workflows run, read from the workflow files so the e2e runs exactly those."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tools.stack_config import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
# pulumi/actions inputs and the Automation API / CLI option each becomes.
ACTION_INPUTS = {
    "refresh": "--refresh",
    "diff": "--diff",
    "expect-no-changes": "--expect-no-changes",
}


def _steps(path: Path) -> list[dict[str, Any]]:
    workflow: dict[str, Any] = yaml.safe_load(path.read_text())
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def action_operation(workflow: str) -> tuple[str, list[str]]:
    """The `command` of the workflow's pulumi/actions step and its options, as e2e.automation arguments."""
    (step,) = [
        step
        for step in _steps(WORKFLOWS / workflow)
        if str(step.get("uses", "")).startswith("pulumi/actions@") and "command" in step.get("with", {})
    ]
    inputs = step["with"]
    options = [flag for name, flag in ACTION_INPUTS.items() if inputs.get(name) is True]
    options += [f"--policy-pack={pack}" for pack in str(inputs.get("policyPacks", "")).split(",") if pack]
    return str(inputs["command"]), options


def run_command(workflow: str, starts_with: str) -> str:
    """The `run:` line of the workflow step that starts with `starts_with` (one such step)."""
    (command,) = [
        str(step["run"]).strip()
        for step in _steps(WORKFLOWS / workflow)
        if str(step.get("run", "")).strip().startswith(starts_with)
    ]
    return command

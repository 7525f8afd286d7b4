"""The Pulumi commands the GitHub workflows run, read from the workflow files so the e2e runs exactly those."""

from __future__ import annotations

import shlex
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
    configs = str(inputs.get("policyPackConfigs", ""))
    options += [f"--policy-pack-config={config}" for config in configs.split(",") if config]
    return str(inputs["command"]), options


def cli_operation(workflow: str, operation: str, runner_temp: Path) -> tuple[str, list[str]]:
    """The workflow's `pulumi <operation> ...` command line (a `run:` step), as e2e.automation arguments, with
    `$RUNNER_TEMP` standing for `runner_temp`.

    The e2e runs operations with a Python policy pack through the Automation API (see e2e/automation.py), so the
    command's flags are carried over one by one; one the e2e does not know fails here instead of being dropped.
    """
    (script,) = [
        str(step["run"]) for step in _steps(WORKFLOWS / workflow) if f"pulumi {operation} " in str(step.get("run", ""))
    ]
    line = script.replace("\\\n", " ").split(f"pulumi {operation} ", 1)[1].split(" 2>&1")[0]
    line = line.replace("$RUNNER_TEMP", str(runner_temp))
    words, options = shlex.split(line), []
    while words:
        word = words.pop(0)
        if word in ("--stack", "--non-interactive"):
            if word == "--stack":
                words.pop(0)  # the workflow's own stack variable; the e2e names its stack
            continue
        if word in ("--policy-pack", "--policy-pack-config", "--event-log"):
            options.append(f"{word}={words.pop(0)}")
        elif word in ACTION_INPUTS.values():
            options.append(word)
        else:
            raise ValueError(f"{workflow}: `pulumi {operation}` flag {word!r} has no e2e.automation counterpart")
    return operation, options

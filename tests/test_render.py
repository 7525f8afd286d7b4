"""The offline render: stable output, masked secrets, schema and checkov checks that really fail."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.pulumi_helpers import committed_stack
from tools.manifests import Manifest
from tools.render import check_stacks, main, render_stack, write_manifests
from tools.stack_config import MASKED, StackConfigError, load_stack_config, stack_names
from tools.validate import SUPPORTED_KUBERNETES, CheckovScan, schema_problems


def _tree(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(directory.iterdir())}


def test_two_renders_write_identical_files(tmp_path: Path) -> None:
    first = _tree(write_manifests(render_stack("prod"), tmp_path / "a"))
    second = _tree(write_manifests(render_stack("prod"), tmp_path / "b"))
    assert first == second
    assert list(first) == sorted(first)


def test_references_resolve_to_generated_names() -> None:
    rendered = committed_stack("prod")
    by_kind = {m.kind: m for m in rendered.manifests if not m.name.endswith("-dashboard")}
    container = by_kind["Deployment"].body["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [
        {"configMapRef": {"name": by_kind["ConfigMap"].name}},
        {"secretRef": {"name": by_kind["Secret"].name}},
    ]
    backend = by_kind["Ingress"].body["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == by_kind["Service"].name
    assert by_kind["HorizontalPodAutoscaler"].body["spec"]["scaleTargetRef"]["name"] == by_kind["Deployment"].name


def test_secure_values_are_masked_never_decrypted(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text((Path(__file__).parent.parent / "Pulumi.yaml").read_text())
    stack_file = (Path(__file__).parent.parent / "Pulumi.dev.yaml").read_text()
    stack_file += "  webapp:secrets:\n    DATABASE_PASSWORD:\n      secure: v1:c2VjcmV0:AAAABBBBCCCC\n"
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_file)
    config = load_stack_config("dev", tmp_path)
    assert config.secret_keys == ["webapp:secrets"]
    assert config.values["webapp:secrets"] == '{"DATABASE_PASSWORD": "[secret]"}'
    assert config.placeholders == []


def test_a_plain_value_among_secure_ones_is_refused(tmp_path: Path) -> None:
    # Once one value is secure the CLI marks the whole key secret, so only the file shows the slip.
    (tmp_path / "Pulumi.yaml").write_text((Path(__file__).parent.parent / "Pulumi.yaml").read_text())
    stack_file = (Path(__file__).parent.parent / "Pulumi.dev.yaml").read_text()
    stack_file += "  webapp:secrets:\n    DATABASE_PASSWORD:\n      secure: v1:AAAA\n    API_TOKEN: hunter2\n"
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_file)
    with pytest.raises(StackConfigError, match=r"webapp:secrets\.API_TOKEN holds plain text"):
        load_stack_config("dev", tmp_path)


def test_rendered_secret_is_masked_even_when_the_value_is_known() -> None:
    rendered = committed_stack("dev")
    secret = next(m for m in rendered.manifests if m.kind == "Secret")
    assert secret.body["stringData"] == {"DATABASE_PASSWORD": MASKED}
    assert rendered.notes, "a placeholder secret must be called out"


def test_project_defaults_apply_and_stack_values_win(tmp_path: Path) -> None:
    root = Path(__file__).parent.parent
    project = (
        root / "Pulumi.yaml"
    ).read_text() + "config:\n  webapp:drainSeconds:\n    type: integer\n    default: 9\n"
    (tmp_path / "Pulumi.yaml").write_text(project)
    for stack in ("dev", "staging"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text((root / f"Pulumi.{stack}.yaml").read_text())
    assert load_stack_config("dev", tmp_path).values["webapp:drainSeconds"] == "5"  # set in Pulumi.dev.yaml
    assert load_stack_config("staging", tmp_path).values["webapp:drainSeconds"] == "9"  # the project default


def test_rendered_manifests_pass_the_schema_in_strict_mode() -> None:
    for stack in stack_names():
        assert schema_problems(committed_stack(stack).manifests) == [], stack


def test_schema_check_rejects_unknown_and_mistyped_fields() -> None:
    deployment = next(m for m in committed_stack("dev").manifests if m.kind == "Deployment")
    broken = copy.deepcopy(deployment)
    broken.body["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    broken.body["spec"]["replicas"] = "three"
    problems = schema_problems([broken])
    assert len(problems) == len(SUPPORTED_KUBERNETES)
    assert all(deployment.filename in problem for problem in problems)


def test_schema_check_holds_each_manifest_to_each_versions_own_schema() -> None:
    # Pod-level resources arrived in Kubernetes 1.32: unknown to the oldest supported version, valid in the newest.
    deployment = next(m for m in committed_stack("dev").manifests if m.kind == "Deployment")
    newer = copy.deepcopy(deployment)
    newer.body["spec"]["template"]["spec"]["resources"] = {"limits": {"cpu": "1"}}
    problems = schema_problems([newer], ["1.31.4", "1.37.0"])
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{deployment.filename} (k8s 1.31.4): spec.template.spec: "), problems
    assert "'resources' was unexpected" in problems[0], problems


def test_schema_check_names_a_kind_it_has_no_schema_for() -> None:
    widget = Manifest(kind="Widget", name="w", body={"apiVersion": "example.com/v1", "kind": "Widget"})
    assert schema_problems([widget], ["1.31.0"]) == [
        f"{widget.filename} (k8s 1.31.0): no schema for Widget example.com/v1 in Kubernetes 1.31.0"
    ]


@pytest.mark.slow
def test_checkov_passes_the_rendered_stacks_and_fails_a_weakened_one(tmp_path: Path) -> None:
    # Every stack in one checkov run (it takes seconds to start); findings come back per stack.
    rendered = {stack: render_stack(stack) for stack in stack_names()}
    deployment = next(m for m in rendered["staging"].manifests if m.kind == "Deployment")
    container = deployment.body["spec"]["template"]["spec"]["containers"][0]
    del container["resources"]["limits"]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    written = {stack: write_manifests(stack_rendered, tmp_path) for stack, stack_rendered in rendered.items()}

    with CheckovScan() as checkov:
        found = check_stacks(rendered, written, tmp_path, checkov)
    assert {stack: problems for stack, problems in found.items() if problems}.keys() == {"staging"}, found
    failed_ids = {problem.split()[1] for problem in found["staging"]}
    assert {"CKV_K8S_11", "CKV_K8S_13", "CKV_K8S_20"} <= failed_ids, found["staging"]
    assert all(problem.startswith("04-deployment-") for problem in found["staging"]), found["staging"]


def test_checkov_started_but_given_nothing_to_scan_ends_with_the_render() -> None:
    # A render whose programs all fail never scans: the warm checkov must not outlive it.
    with CheckovScan() as checkov:
        pass
    assert checkov.exit_status is not None


class _RecordingScan:
    """Stands in for checkov in a test of how the render drives it: records what it is asked to scan."""

    scanned: list[Path]

    def __enter__(self) -> _RecordingScan:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def scan(self, directory: Path) -> None:
        self.scanned.append(directory)

    def problems(self) -> list[str]:
        return []


def test_render_all_runs_checkov_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _RecordingScan.scanned = []
    monkeypatch.setattr("tools.render.CheckovScan", _RecordingScan)
    assert main(["--all", "--output", str(tmp_path)]) == 0
    assert _RecordingScan.scanned == [tmp_path]


def test_cli_fails_clearly_on_an_unknown_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nosuchstack", "--no-checkov"]) == 1
    assert "no stack file Pulumi.nosuchstack.yaml; stacks here: dev, prod, staging" in capsys.readouterr().err


def test_cli_renders_and_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prod", "--no-checkov", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "HorizontalPodAutoscaler" in out
    assert "3-10" in out
    assert "ghcr.io/example/webapp:1.4.2" in out
    assert "webapp.example.com" in out
    assert (tmp_path / "prod").is_dir()


def test_the_render_fails_a_stack_the_policy_pack_refuses(tmp_path: Path) -> None:
    # A run whose Deployment lost its limits: the pack's requests-and-limits policy fails the render by name.
    rendered = copy.deepcopy(committed_stack("dev"))
    (deployment,) = [r for r in rendered.run.resources if r.type == "kubernetes:apps/v1:Deployment"]
    del deployment.state["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    written = {"dev": write_manifests(rendered, tmp_path)}
    found = check_stacks({"dev": rendered}, written, tmp_path, checkov=None)
    assert any(problem.startswith("policy pack: ") and "limits" in problem for problem in found["dev"]), found

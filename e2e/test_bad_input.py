"""Bad input through the real CLI: the program's or the policy pack's message, and nothing created."""

from __future__ import annotations

import json
from pathlib import Path

from e2e.automation import automation
from localcluster.pulumi_cli import Workspace
from tools.preview_report import read_events, report

HERE = Path(__file__).resolve().parent


def _resources(ws: Workspace) -> list[object]:
    deployment = json.loads(ws.run("pulumi stack export").stdout)["deployment"]
    resources: list[object] = deployment.get("resources") or []
    return resources


def _render_into(ws: Workspace, tmp_path: Path) -> Path:
    rendered = tmp_path / "rendered"
    ws.run(f"pulumi config set kubernetes:renderYamlToDirectory {rendered}")
    return rendered


def test_latest_tag_stops_preview_and_up_naming_the_key(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    ws.run("pulumi stack select --create dev")
    ws.run("pulumi config set --secret --path 'webapp:secrets.DATABASE_PASSWORD' 'not-used'")
    rendered = _render_into(ws, tmp_path)
    ws.run("pulumi config set --path 'webapp:image.tag' latest")

    events = tmp_path / "events.jsonl"
    # As the preview workflow runs it: PULUMI_DEBUG_COMMANDS enables --event-log (the Automation API sets it too).
    preview = ws.run(
        f"pulumi preview --event-log {events}", check=False, env={**ws.environment(), "PULUMI_DEBUG_COMMANDS": "true"}
    )
    assert preview.returncode != 0
    assert "webapp:image.tag: 'latest' cannot be tracked or rolled back" in preview.output
    # What the preview workflow comments on the pull request for this output and the CLI's event log.
    comment = report("dev", "failure", preview.output, read_events(events.read_text()))
    assert "Preview of stack `dev`: FAILED" in comment
    assert "- setting `webapp:image.tag`: 'latest' cannot be tracked or rolled back" in comment

    up = ws.run("pulumi up --yes", check=False)
    assert up.returncode != 0
    assert "webapp:image.tag" in up.output
    assert [r for r in _resources(ws) if "kubernetes:" in json.dumps(r)] == []
    assert not rendered.exists() or list(rendered.rglob("*.yaml")) == []


def test_missing_secret_stops_preview_naming_the_key_and_the_fix(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    ws.run("pulumi stack select --create staging")
    rendered = _render_into(ws, tmp_path)

    preview = ws.run("pulumi preview", check=False)
    assert preview.returncode != 0
    assert "webapp:secrets.DATABASE_PASSWORD is missing (listed in secretKeys)" in preview.output
    assert "pulumi config set --secret --path 'webapp:secrets.DATABASE_PASSWORD'" in preview.output

    up = ws.run("pulumi up --yes", check=False)
    assert up.returncode != 0
    assert [r for r in _resources(ws) if "kubernetes:" in json.dumps(r)] == []
    assert not rendered.exists() or list(rendered.rglob("*.yaml")) == []


def test_policy_violation_stops_preview_with_the_policy_name(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path, program_dir=HERE / "unsafe_program", with_stacks=False)
    ws.login()
    ws.run("pulumi stack select --create policy-check")
    _render_into(ws, tmp_path)

    # As the workflows run it (pulumi/actions = the Automation API), the pack in its own virtualenv; one policy
    # made advisory by a pack config, so the report shows both levels.
    (ws.root / "advisory.json").write_text(json.dumps({"containers-run-unprivileged": "advisory"}))
    events = tmp_path / "events.jsonl"
    preview = automation(
        ws,
        "policy-check",
        "preview",
        "--policy-pack=policy",
        "--policy-pack-config=advisory.json",
        f"--event-log={events}",
        check=False,
    )
    assert preview.returncode != 0
    for policy in ("images-are-pinned", "containers-set-requests-and-limits", "deployments-have-readiness-probes"):
        assert policy in preview.output, preview.output[-4000:]
    assert "mandatory" in preview.output
    assert "images-by-digest" not in preview.output, "off unless the deploy config turns it on"
    # The pull-request comment, from the CLI's own event log: what stopped it, and the advisory finding too.
    why = report("policy-check", "failure", preview.output, read_events(events.read_text())).split("<details>")[0]
    stopped, _, advisory = why.partition("Advisory policy findings")
    assert "- policy `images-are-pinned` (mandatory) on kubernetes:apps/v1:Deployment: " in stopped, why
    assert "- policy `containers-run-unprivileged` (advisory) on kubernetes:apps/v1:Deployment: " in advisory, why
    assert "containers-run-unprivileged" not in stopped, why

    # As the deploy workflow runs it: the pack's deploy config makes the digest rule mandatory.
    deploy = automation(
        ws,
        "policy-check",
        "preview",
        "--policy-pack=policy",
        "--policy-pack-config=policy/deploy-config.json",
        f"--event-log={events}",
        check=False,
    )
    assert deploy.returncode != 0
    assert "images-by-digest" in deploy.output, deploy.output[-4000:]
    assert "runs 'nginx:latest' by tag only" in deploy.output
    # What the preview workflow comments on the pull request for this output: each policy and its message.
    comment = report("policy-check", "failure", deploy.output, read_events(events.read_text()))
    assert "- policy `images-by-digest` (mandatory) on " in comment, comment
    assert "runs 'nginx:latest' by tag only" in comment.split("<details>")[0]

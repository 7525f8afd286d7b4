"""Every Pulumi.<stack>.yaml through the real CLI and provider: the README's commands, preview, up, changes, destroy.

No cluster: the provider's render mode (`kubernetes:renderYamlToDirectory`)
writes the manifests it would apply, so the engine and the real provider
produce them. Each stack is deployed from a clean file backend.
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.automation import automation
from e2e.readme import ReadmeCommands
from e2e.render_comparison import differences, load_rendered, normalise
from e2e.stacks import DRIFT_STEP, SECRET_VALUE, action, cli_preview, drift_job, make_render, stack_file
from localcluster.pulumi_cli import Workspace
from tools.mocks import urn_type
from tools.preview_report import read_events, report
from tools.stack_config import stack_names

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SERVICE = "kubernetes:core/v1:Service"


def _set_secrets(ws: Workspace, stack: str, readme: ReadmeCommands) -> None:
    """The README's `config set --secret` line, for every secret the stack declares."""
    command = readme.get("pulumi config set --secret")
    for name in stack_file(stack).get("webapp:secretKeys", []):
        ws.run(command.replace("DATABASE_PASSWORD", name))


def _changes(preview: dict[str, Any]) -> dict[str, set[str]]:
    """Resource type -> the operations `pulumi preview --json` plans for it, leaving out `same`."""
    ops: dict[str, set[str]] = defaultdict(set)
    for step in preview.get("steps", []):
        if step["op"] != "same":
            ops[urn_type(step["urn"])].add(step["op"])
    return dict(ops)


def _encodings(value: str) -> list[str]:
    return [value, base64.b64encode(value.encode()).decode()]


def _preview_changes(ws: Workspace, file: dict[str, Any]) -> None:
    """The README's rollout claims, as the engine plans them: config rolls the pods, a tag is an update."""
    # A changed appConfig value replaces the ConfigMap and updates (rolls) the Deployment, nothing else.
    greeting = str(file["webapp:appConfig"]["GREETING"])
    ws.run("pulumi config set --path 'webapp:appConfig.GREETING' 'Changed by the e2e'")
    changes = _changes(ws.run("pulumi preview --json").json())
    assert changes.keys() == {CONFIG_MAP, DEPLOYMENT}, changes
    assert "replace" in changes[CONFIG_MAP], changes
    assert changes[DEPLOYMENT] == {"update"}, changes
    ws.run(f"pulumi config set --path 'webapp:appConfig.GREETING' '{greeting}'")

    # A new image tag is a Deployment update only.
    tag = str(file["webapp:image"]["tag"])
    ws.run("pulumi config set --path 'webapp:image.tag' 9.9.9")
    changes = _changes(ws.run("pulumi preview --json").json())
    assert changes == {DEPLOYMENT: {"update"}}, changes
    ws.run(f"pulumi config set --path 'webapp:image.tag' {tag}")

    # The settings that commonly change never replace the stable-named Deployment or Service.
    common = [
        ("webapp:resources.limits.memory", "300Mi", file["webapp:resources"]["limits"]["memory"]),
        ("webapp:drainSeconds", "7", file.get("webapp:drainSeconds", 5)),
    ]
    if not file.get("webapp:autoscaling", {}).get("enabled"):
        common.append(("webapp:replicas", str(int(file["webapp:replicas"]) + 1), file["webapp:replicas"]))
    for path, value, original in common:
        ws.run(f"pulumi config set --path '{path}' {value}")
        changes = _changes(ws.run("pulumi preview --json").json())
        assert changes[DEPLOYMENT] == {"update"}, (path, changes)
        assert SERVICE not in changes, (path, changes)
        assert not [kind for kind, ops in changes.items() if any("replace" in op for op in ops)], (path, changes)
        ws.run(f"pulumi config set --path '{path}' {original}")
    ws.run("pulumi preview --expect-no-changes")


@pytest.mark.parametrize("stack", stack_names())
def test_stack_lifecycle(stack: str, workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    rendered = tmp_path / "rendered"
    readme = ReadmeCommands(stack=stack, secret=SECRET_VALUE)
    ws.run(readme.get("pulumi stack select"))
    _set_secrets(ws, stack, readme)
    ws.run(f"pulumi config set kubernetes:renderYamlToDirectory {rendered}")

    # The stack file now holds the secret encrypted, as `pulumi config set --secret` writes it.
    written = (ws.root / f"Pulumi.{stack}.yaml").read_text()
    assert "secure:" in written
    assert SECRET_VALUE not in written

    # What a pull request runs (pulumi/actions with the policy pack), the README's preview, then the deploy
    # workflow's up; the README's own `up` right after has nothing left to do.
    automation(ws, stack, *cli_preview("preview.yml", tmp_path))
    # Its pull-request comment, from the engine events the preview step's --event-log kept: passed, nothing found.
    comment = report(stack, "success", "", read_events((tmp_path / "events.jsonl").read_text()))
    assert comment.startswith(f"### Preview of stack `{stack}`: passed\n\n<details>"), comment
    ws.run(readme.get("pulumi preview"))
    automation(ws, stack, *action("pulumi-up.yml"))
    second_up = ws.run(readme.get("pulumi up"))
    assert "unchanged" in second_up.stdout
    assert not re.search(r"\d+ to (create|update|delete|replace)", second_up.stdout), second_up.stdout
    ws.run(readme.get("pulumi preview --expect-no-changes"))
    # The scheduled drift check's own command line: the CLI takes every flag, and the refresh reaches the
    # provider, which (in render mode) has no cluster to read; against a cluster it must pass (issue 8's e2e).
    drift = drift_job(stack, tmp_path / "runner", ws.environment()).run(DRIFT_STEP, ws.root)
    assert drift.returncode != 0
    assert "failed to read resource state due to unreachable cluster" in drift.output, drift.output[-3000:]

    outputs = ws.run("pulumi stack output --json").json()
    file = stack_file(stack)
    assert outputs["namespace"] == file["webapp:namespace"]
    image = file["webapp:image"]
    assert outputs["image"] == f"{image['repository']}:{image['tag']}@{image['digest']}"
    assert ws.run(readme.get("pulumi stack output url")).stdout.strip() == outputs["url"]

    # The engine's manifests are the offline render's, object by object.
    engine_objects = normalise(load_rendered(rendered))
    offline_objects = normalise(load_rendered(make_render(stack, tmp_path / "offline")))
    assert differences(engine_objects, offline_objects) == []

    _preview_changes(ws, stack_file(stack))

    # Secrets: encrypted in the state, never in outputs, the ConfigMap or any command's output.
    export = ws.run("pulumi stack export").stdout
    assert '"ciphertext"' in export
    assert ws.run("pulumi stack output --json").stdout.count(SECRET_VALUE) == 0
    files_with_secret = sorted(
        path.relative_to(rendered)
        for path in rendered.rglob("*.yaml")
        if any(text in path.read_text() for text in _encodings(SECRET_VALUE))
    )
    # Render mode writes Secret manifests with their data; they must be the only files holding it,
    # and they live in this test's temporary folder only.
    assert files_with_secret, "render mode wrote no Secret manifest holding the value"
    for path in files_with_secret:
        assert yaml.safe_load((rendered / path).read_text())["kind"] == "Secret", path
    assert rendered.is_relative_to(tmp_path)

    ws.run(readme.get("pulumi destroy"))
    remaining = json.loads(ws.run("pulumi stack export").stdout)["deployment"].get("resources") or []
    assert remaining == []
    assert list(rendered.rglob("*.yaml")) == []

    for text in _encodings(SECRET_VALUE):
        assert text not in export
        assert text not in ws.all_output()
    # Every pulumi command the README shows ran (login: the workspace's own, to a file backend).
    assert [command for command in readme.unused() if not command.startswith("pulumi login")] == []

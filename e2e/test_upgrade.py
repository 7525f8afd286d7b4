"""Upgrading a deployed stack to a new program layout moves no object: proven by the real engine's preview.

Changing a component's parent changes the URN of everything below it; without
an alias the engine would replace every object of every stack. The program is
deployed as it was before `webapp:index:WebApp` parented the components (taken
from git), then previewed and updated with the current one.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import yaml

from e2e.stacks import SECRET_VALUE
from localcluster.pulumi_cli import PROGRAM_DIRS, Workspace
from tools.mocks import urn_type
from tools.stack_config import REPO_ROOT

# The last commit whose AppConfig, WebService and WebIngress sat directly under the stack.
BEFORE_WEBAPP_TREE = "c6f6c92d997093907f05ba2cd3207c4bcfaf5fb1"
STACK = "prod"
STACK_FILE = f"Pulumi.{STACK}.yaml"
PROGRAM = ["__main__.py", "components", STACK_FILE]


def _checkout(commit: str, into: Path) -> None:
    """The program files of `commit`, written over those in `into`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, *PROGRAM], cwd=REPO_ROOT, capture_output=True, check=False
    )
    assert archive.returncode == 0, f"git archive {commit} failed (a shallow clone?): {archive.stderr.decode()}"
    for package in PROGRAM_DIRS:
        shutil.rmtree(into / package, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def _copy_current(into: Path) -> None:
    """The current program and the current stack file's settings, which win (an upgrade commit changes both); the
    workspace's own keys, such as the secret set with `config set --secret`, stay."""
    for package in PROGRAM_DIRS:
        shutil.rmtree(into / package, ignore_errors=True)
        shutil.copytree(REPO_ROOT / package, into / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO_ROOT / "__main__.py", into / "__main__.py")
    deployed = yaml.safe_load((into / STACK_FILE).read_text())
    current = yaml.safe_load((REPO_ROOT / STACK_FILE).read_text())
    deployed["config"] = {**deployed["config"], **current["config"]}
    (into / STACK_FILE).write_text(yaml.safe_dump(deployed, sort_keys=False))


def test_the_webapp_tree_replaces_nothing_in_a_deployed_stack(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    _checkout(BEFORE_WEBAPP_TREE, ws.root)
    ws.run(f"pulumi stack select --create {STACK}")
    ws.run(f"pulumi config set --secret --path 'webapp:secrets.DATABASE_PASSWORD' '{SECRET_VALUE}'")
    ws.run(f"pulumi config set kubernetes:renderYamlToDirectory {tmp_path / 'rendered'}")
    ws.run("pulumi up --yes")
    before = {r["urn"] for r in ws.run("pulumi stack export").json()["deployment"]["resources"]}
    assert not any("webapp:index:WebApp" in urn for urn in before)

    _copy_current(ws.root)
    steps = ws.run("pulumi preview --json").json()["steps"]
    changed = {(step["op"], urn_type(step["urn"])) for step in steps if step["op"] != "same"}
    # New: the WebApp node, the ServiceMonitor that prod's metrics setting has asked for since, the pods' own
    # ServiceAccount, and the alerts and dashboard (WebMonitoring). Whatever else changed since that commit (pod spec
    # fields) updates in place. Nothing is created twice, replaced or deleted.
    assert {change for change in changed if change[0] != "update"} == {
        ("create", "webapp:index:WebApp"),
        ("create", "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"),
        ("create", "kubernetes:core/v1:ServiceAccount"),
        ("create", "webapp:index:WebMonitoring"),
        ("create", "kubernetes:monitoring.coreos.com/v1:PrometheusRule"),
        ("create", "kubernetes:core/v1:ConfigMap"),
    }, changed

    ws.run("pulumi up --yes")
    after = ws.run("pulumi stack export").json()["deployment"]["resources"]
    kubernetes = [r for r in after if r["type"].startswith("kubernetes:") and not r["type"].startswith("pulumi:")]
    assert kubernetes
    for resource in kubernetes:
        if resource["type"] != "kubernetes:core/v1:Namespace":
            assert "webapp:index:WebApp$" in resource["urn"], resource["urn"]
    ws.run("pulumi preview --expect-no-changes")

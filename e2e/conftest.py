"""Fixtures for the end-to-end suite: the real engine must be there, and every test gets its own workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.readme import readme_sourced_file
from e2e.real_cluster import RealCluster, running_real_cluster
from localcluster.paths import ENGINE_ENV_FILE, PULUMI_HOME
from localcluster.prometheus import Prometheus, running_prometheus
from localcluster.pulumi_cli import TIMINGS, Workspace, pinned_version, pulumi_binary


@pytest.fixture(scope="session", autouse=True)
def engine() -> Path:
    """The CLI and the provider plugin `make engine` installed; a missing piece fails the run, never skips it."""
    cli = pulumi_binary()
    plugin = PULUMI_HOME / "plugins" / f"resource-kubernetes-v{pinned_version('pulumi-kubernetes')}"
    assert plugin.is_dir(), f"no Kubernetes provider plugin at {plugin}: run `make engine`"
    # Every workspace's commands source the file the README's "Using it for real" block sources.
    assert readme_sourced_file() == ENGINE_ENV_FILE, readme_sourced_file()
    return cli


@pytest.fixture
def workspace(tmp_path: Path, request: pytest.FixtureRequest) -> Workspace:
    """A scratch copy of the project, logged in to its own file backend."""
    ws = Workspace.create(tmp_path)
    ws.label = request.node.name
    ws.login()
    return ws


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """The control plane, real node and registry every real-node module of the run shares (e2e/real_cluster.py)."""
    with running_real_cluster(tmp_path_factory.mktemp("real-node")) as real:
        yield real


@pytest.fixture(scope="session")
def prometheus(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """One Prometheus (built by `make node`) for the real-node modules that judge a stack by its metrics."""
    with running_prometheus(tmp_path_factory.mktemp("prometheus")) as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how long each engine operation took (measured, never asserted)."""
    if not TIMINGS:
        return
    terminalreporter.section("engine timings")
    for test, command, seconds in TIMINGS:
        terminalreporter.write_line(f"{seconds:6.1f} s  {test}: {command[:110]}")

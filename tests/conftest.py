"""Fixtures shared by the test modules."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from harness.app_server import RunningServer, start_server
from tools.mocks import KubernetesMocks
from tools.stack_config import REPO_ROOT

StartServer = Callable[..., RunningServer]


@pytest.fixture
def mocks() -> KubernetesMocks:
    """Fresh Pulumi mocks that record every registration, for a test that inspects what a run registered.

    Tests that only read the result use `tests.pulumi_helpers.run_main` / `run_components`, which make their own.
    """
    return KubernetesMocks()


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[StartServer]:
    """Start real servers (`python -m app` on free ports, settings as keyword env vars); all are killed at teardown.

    Each call gets its own log directory under the test's tmp_path; `prefix`
    (a command the server runs under), `cwd` and `command` go to `start_server`. The
    server is returned before it is ready: call `wait_until_ready()` when the
    test needs it.
    """
    servers: list[RunningServer] = []

    def start(
        prefix: Sequence[str] = (),
        cwd: Path = REPO_ROOT,
        python: Path | str = sys.executable,
        command: Sequence[str] = ("-m", "app"),
        **env: str,
    ) -> RunningServer:
        log_dir = tmp_path / f"server{len(servers)}"
        log_dir.mkdir()
        server = start_server(log_dir, env, prefix=prefix, cwd=cwd, python=python, command=command)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def draining_server(start_app: StartServer) -> RunningServer:
    """A ready server with a 2 s drain and the test routes (stopped by `start_app`)."""
    server = start_app(DRAIN_SECONDS="2", ENABLE_TEST_ROUTES="true")
    server.wait_until_ready()
    return server

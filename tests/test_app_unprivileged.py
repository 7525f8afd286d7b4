"""The server runs as the image's user: uid 10001, no writable home, read-only working directory."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.server_process import free_port, get, start_server, stop, wait_until_ready

SETPRIV = shutil.which("setpriv")


def _unprivileged_prefix() -> list[str]:
    """As root: switch to the image's uid 10001 with setpriv. As anyone else: already unprivileged, run as is."""
    if os.geteuid() != 0:
        return []
    assert SETPRIV is not None, "setpriv (util-linux) is needed to run the server as uid 10001"
    return [SETPRIV, "--reuid", "10001", "--regid", "10001", "--clear-groups"]


@pytest.mark.slow
def test_serves_and_drains_unprivileged_without_writable_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    process = start_server(
        port,
        logs,
        prefix=_unprivileged_prefix(),
        cwd=Path("/"),
        HOME="/nonexistent",
        PYTHONDONTWRITEBYTECODE="1",
        DRAIN_SECONDS="0",
    )
    try:
        wait_until_ready(process, port)
        assert get(port, "/").status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        stop(process)
    assert (logs / "stderr.log").read_text() == ""

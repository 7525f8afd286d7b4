"""The server runs as the image's user: uid 10001, no writable home, read-only working directory."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.server_process import free_port, get, start_server, stop, wait_until_ready

SETPRIV = shutil.which("setpriv")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None, reason="needs root and setpriv to switch to uid 10001")
def test_serves_and_drains_as_uid_10001_without_writable_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    process = start_server(
        port,
        logs,
        prefix=[str(SETPRIV), "--reuid", "10001", "--regid", "10001", "--clear-groups"],
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

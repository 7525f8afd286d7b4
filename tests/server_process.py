"""Helpers to run the real server (`python -m app`) in a child process for tests and benchmarks."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Outcome:
    """What one HTTP request got: a status code, or the name of the error raised."""

    path: str
    status: int | None
    error: str | None
    sent_at: float


def get(port: int, path: str, timeout: float = 10.0) -> Outcome:
    """GET `path` on a fresh connection (no keep-alive), recording the status or the error."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return Outcome(path, response.status, None, started)
    except OSError as error:
        return Outcome(path, None, type(error).__name__, started)
    except http.client.HTTPException as error:
        return Outcome(path, None, type(error).__name__, started)
    finally:
        conn.close()


def start_server(
    port: int, log_dir: Path, prefix: Sequence[str] = (), cwd: Path = REPO_ROOT, **env: str
) -> subprocess.Popen[bytes]:
    """Start `python -m app` on `port` (behind an optional command `prefix`), output into files under `log_dir`."""
    environment = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT), **env}
    with (log_dir / "stdout.log").open("wb") as stdout, (log_dir / "stderr.log").open("wb") as stderr:
        return subprocess.Popen(
            [*prefix, sys.executable, "-m", "app"], cwd=cwd, env=environment, stdout=stdout, stderr=stderr
        )


def wait_until_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 15.0) -> float:
    """Poll /ready until it answers 200; return the seconds that took. Raises if it never does."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before becoming ready")
        if get(port, "/ready", timeout=1.0).status == 200:
            return time.monotonic() - started
        time.sleep(0.01)
    raise TimeoutError(f"server on port {port} not ready within {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Make sure the process is gone (SIGKILL after a bounded wait)."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)

"""The app's server (`python -m app`) as a child process on free ports, for the tests (through `tests/conftest.py`)
and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.http import Outcome, get
from harness.processes import free_port, stop, wait_until
from tools.stack_config import REPO_ROOT


@dataclass
class RunningServer:
    """A `python -m app` child process, its two ports and the files its output goes to."""

    process: subprocess.Popen[bytes]
    port: int
    management_port: int
    log_dir: Path

    def get(self, path: str, timeout: float = 10.0) -> Outcome:
        """GET on the traffic port."""
        return get(self.port, path, timeout)

    def probe(self, path: str, timeout: float = 10.0) -> Outcome:
        """GET on the management port, as kubelet and Prometheus do."""
        return get(self.management_port, path, timeout)

    def wait_until_ready(self, timeout: float = 15.0) -> float:
        """Poll /ready on the management port until it answers 200; return the seconds that took.

        Fails at once, with the exit code and the end of stderr, if the server exits first.
        """
        started = time.monotonic()
        wait_until(
            f"the server on port {self.port} ready",
            lambda: self.probe("/ready", timeout=1.0).status == 200,
            timeout,
            lambda: f"exit code {self.process.poll()}; stderr: {self.stderr()[-2000:]}",
            lambda: self.process.poll() is None,
            interval=0.01,
        )
        return time.monotonic() - started

    def terminate(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and wait (bounded) for the exit code."""
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def metrics(self) -> dict[str, float]:
        """Every sample of the management port's /metrics, keyed by `name{labels}`."""
        scrape = self.probe("/metrics")
        if scrape.status != 200:
            raise AssertionError(f"/metrics answered {scrape}")
        samples = {}
        for line in scrape.body.decode().splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                samples[key] = float(value)
        return samples

    def worker_pids(self) -> list[int]:
        """The master's children right now: its workers."""
        master = self.process.pid
        return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]

    def stdout(self) -> str:
        """Everything the server wrote to stdout so far."""
        return (self.log_dir / "stdout.log").read_text()

    def stderr(self) -> str:
        """Everything the server wrote to stderr so far."""
        return (self.log_dir / "stderr.log").read_text()

    def stop(self) -> None:
        """Make sure the process is gone (SIGKILL after a bounded wait)."""
        stop(self.process)


def start_server(
    log_dir: Path,
    env: Mapping[str, str],
    *,
    prefix: Sequence[str] = (),
    cwd: Path = REPO_ROOT,
    command: Sequence[str] = ("-m", "app"),
    python: Path | str = sys.executable,
) -> RunningServer:
    """Start the server on free ports (behind an optional command `prefix`), output into files under `log_dir`.

    `python` is the interpreter (by default this one, with this checkout's virtualenv).
    """
    port = free_port()
    management_port = free_port()
    while management_port == port:
        management_port = free_port()
    environment = {
        **os.environ,
        "PORT": str(port),
        "MANAGEMENT_PORT": str(management_port),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO_ROOT),
        **env,
    }
    with (log_dir / "stdout.log").open("wb") as stdout, (log_dir / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [*prefix, str(python), *command], cwd=cwd, env=environment, stdout=stdout, stderr=stderr
        )
    return RunningServer(process, port, management_port, log_dir)

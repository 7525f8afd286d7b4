"""Long-running child processes of the e2e (control plane, node, registry, builder): started, watched, stopped.

Each daemon writes its output to its own log file in one folder; the last lines
of every log are at hand for failure messages; every process is stopped by its
own PID, newest first, with bounded waits.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from harness.processes import stop

STOP_TIMEOUT_SECONDS = 20


@dataclass
class Daemons:
    """A set of named child processes whose output goes to `<directory>/<name>.log`."""

    directory: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, IO[bytes]] = field(default_factory=dict)

    def spawn(
        self, name: str, binary: Path, *args: str, env: Mapping[str, str] | None = None, hint: str = ""
    ) -> subprocess.Popen[bytes]:
        """Start `binary args...` in its own session; a missing binary names `hint` (the make target)."""
        if not binary.exists():
            raise FileNotFoundError(f"no {binary}" + (f": run `{hint}`" if hint else ""))
        log = (self.directory / f"{name}.log").open("wb")
        self.logs[name] = log
        process = subprocess.Popen(
            [str(binary), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def alive(self) -> bool:
        """True while every process started so far is still running."""
        return all(process.poll() is None for process in self.processes.values())

    def tails(self, lines: int = 25) -> str:
        """The last lines of every process's log, for failure messages."""
        parts = []
        for name in self.processes:
            with contextlib.suppress(OSError):
                text = (self.directory / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name} (exit {self.processes[name].poll()}) ---\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self, name: str) -> None:
        """Stop one process by its PID: SIGTERM, then SIGKILL after a bounded wait."""
        stop(self.processes[name], grace=STOP_TIMEOUT_SECONDS)
        self.logs[name].close()

    def stop_all(self) -> None:
        """Stop every process, newest first."""
        for name in reversed(list(self.processes)):
            self.stop(name)

"""What `make up` started, kept in `.local/state.json` so that `make status`, a second `make up` and `make down`
find it: the namespace, each process by PID (with the text its command line must hold, so a reused PID is never
signalled), the host ports, the stack and the image it runs. Written after every step, so that an interrupted
`make up` leaves a record of whatever it had started.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localcluster.paths import LOCAL

STATE_FILE = LOCAL / "state.json"
NETNS = "webapp-local"
"""The local cluster's network namespace (e2e runs use `webapp-e2e-<pid>`)."""


@dataclass
class TrackedProcess:
    """A process `make up` started: its PID and a marker its command line holds."""

    pid: int
    marker: str

    def running(self) -> bool:
        """Whether the PID is alive and still the process that was started (not a reused PID).

        A process in the middle of an exec (nsenter and unshare exec the next command) shows an empty command line
        for a moment: that is still the process, unless it is a zombie (which has no command line either)."""
        proc = Path(f"/proc/{self.pid}")
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if argv:
                return self.marker in argv
            state = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            return False
        return "zombie" not in state and "dead" not in state


@dataclass
class LocalState:
    """The record of one local cluster."""

    netns: str = NETNS
    supervisor: TrackedProcess | None = None
    forwarders: dict[str, TrackedProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    """Host loopback ports: `api` (the API server), `http` and `https` (Traefik's entry points)."""
    stack: str = ""
    digest: str = ""
    """The image digest the stack last rolled out."""

    @classmethod
    def load(cls, path: Path = STATE_FILE) -> LocalState | None:
        """The saved state, or None when nothing was started."""
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        supervisor = raw.pop("supervisor", None)
        forwarders = raw.pop("forwarders", {})
        return cls(
            supervisor=TrackedProcess(**supervisor) if supervisor else None,
            forwarders={name: TrackedProcess(**entry) for name, entry in forwarders.items()},
            **raw,
        )

    def save(self, path: Path = STATE_FILE) -> None:
        """Write the state (atomically: a reader never sees half of it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=2))
        partial.replace(path)

"""The local cluster's own process: registry, control plane and one real node, kept running until SIGTERM.

    python -m localcluster.supervisor DIRECTORY     # started by `make up` inside the cluster's namespaces

It runs inside the network namespace and private mount namespace `make up` made (localcluster/namespaces.py), starts
what the real-node e2e starts, the same way (the same modules), writes `DIRECTORY/ready.json` once the node is Ready
and Traefik answers, and then waits. SIGTERM or SIGINT, at any point of the start or after it, stops everything in
reverse order and removes the node's cgroup root; what a SIGKILL leaves behind, `make down` sweeps.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from localcluster.control_plane import running_control_plane
from localcluster.image import LOGIN_FILE, STORAGE
from localcluster.node import running_node
from localcluster.registry import Login, running_registry

REGISTRY_PORT = 5000
CGROUP_NAME = "webapp-local-node"
"""The local cluster's pods' cgroup root: not the e2e's, so both can run on one machine."""
READY_FILE = "ready.json"


class Stopped(BaseException):
    """SIGTERM or SIGINT arrived: unwind and stop everything. A BaseException, as KeyboardInterrupt is: the waits
    of a start retry on any Exception (a server not up yet), and must not swallow the stop."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    # One signal is enough: a second one must not interrupt the stopping it started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Stopped(signal.Signals(signum).name)


def run(directory: Path) -> int:
    """Start the cluster under `directory`, report it ready, and hold it until a signal."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / READY_FILE).unlink(missing_ok=True)
    began = time.monotonic()
    try:
        with ExitStack() as stack:
            login = Login.load_or_create(LOGIN_FILE)
            registry = stack.enter_context(running_registry(directory / "registry", STORAGE, login, port=REGISTRY_PORT))
            plane = stack.enter_context(running_control_plane(directory / "control-plane", with_kwok=False))
            node = stack.enter_context(running_node(directory / "node", plane, registry.host, CGROUP_NAME))
            ready = {
                "api_port": plane.api_port,
                "registry_host": registry.host,
                "kubeconfig": str(plane.kubeconfig),
                "pki": str(plane.pki.ca_cert.parent),
                "started_seconds": round(time.monotonic() - began, 1),
                "node_seconds": round(node.started_in, 1),
            }
            (directory / READY_FILE).write_text(json.dumps(ready))
            print(f"supervisor: cluster ready in {ready['started_seconds']} s", flush=True)
            while True:
                signal.pause()
    except Stopped as stopped:
        print(f"supervisor: {stopped}: cluster stopped", flush=True)
        return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m localcluster.supervisor DIRECTORY`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m localcluster.supervisor DIRECTORY", file=sys.stderr)
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())

"""Start, find and remove the local cluster of `make up`: its namespaces, supervisor, forwarders and files.

Start: the network namespace, then the supervisor inside it (localcluster/supervisor.py, in a private mount
namespace of its own), then one forwarder per port the host reaches (API server, Traefik's HTTP and HTTPS entry
points) on host loopback. Remove (`make down`, and any `make up` that finds a half-started cluster): forwarders and
supervisor by PID, then whatever a killed supervisor left (the pods' cgroup root, every process in the namespace),
the namespace itself with its links and iptables rules, and the files under `.local/` but the passphrase.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.processes import free_port, wait_until
from localcluster.cgroups import remove_root
from localcluster.namespaces import create_netns, delete_netns, in_namespaces_command, netns_exists, netns_pids
from localcluster.node import INGRESS_HTTP_PORT, INGRESS_HTTPS_PORT, NODE_IP
from localcluster.paths import LOCAL
from localcluster.pki import Pki
from localcluster.state import NETNS, STATE_FILE, LocalState, TrackedProcess
from localcluster.supervisor import CGROUP_NAME, READY_FILE
from tools.stack_config import REPO_ROOT

CLUSTER_DIR = LOCAL / "cluster"
RUN_LINK = Path("/run") / NETNS
"""A short name for CLUSTER_DIR, which the cluster is started under: a unix socket's path (containerd's, the
kubelet's) must fit in 108 bytes, and a checkout's path may be long."""
LOGS = LOCAL / "logs"
HOST_KUBECONFIG = LOCAL / "kubeconfig"
PASSPHRASE_FILE = LOCAL / "passphrase"
"""Generated once, kept by `make down`: the local backend's stacks encrypt their secrets with it."""
KEPT = (PASSPHRASE_FILE.name,)
START_TIMEOUT_SECONDS = 300
STOP_TIMEOUT_SECONDS = 60
PREFERRED_PORTS = {"http": 8080, "https": 8443}


@dataclass(frozen=True)
class RunningCluster:
    """What the host needs of a started local cluster."""

    kubeconfig: Path
    """The admin kubeconfig for the host, through the forwarded API port."""
    pki: Pki
    registry_host: str
    """The registry as the node reaches it (in the namespace): the host name the images carry."""
    ports: dict[str, int]


def _spawn(name: str, argv: list[str], marker: str) -> TrackedProcess:
    """Start `argv` detached from this process (its own session), its output in `.local/logs/<name>.log`; `marker`
    is what its command line holds (checked before it is ever signalled)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            start_new_session=True,
        )
    tracked = TrackedProcess(process.pid, marker)
    # Until the child has exec'd, its command line is this process's: wait for it, so `running()` holds from now on.
    wait_until(
        f"{name} started", tracked.running, 10, functools.partial(_log_tail, name), lambda: process.poll() is None
    )
    return tracked


def _log_tail(name: str, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((LOGS / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    return ""


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _host_ports(state: LocalState) -> dict[str, int]:
    """The host loopback ports: those of the last run where free, the preferred ones, else free ones."""
    ports = {}
    for name in ("api", "http", "https"):
        wanted = state.ports.get(name) or PREFERRED_PORTS.get(name, 0)
        ports[name] = wanted if wanted and _port_free(wanted) else free_port()
    return ports


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _start_forwarders(state: LocalState, ready: dict[str, object]) -> None:
    """One forwarder per host port into the namespace; each recorded as soon as it is started."""
    targets = {
        "api": f"127.0.0.1:{ready['api_port']}",
        "http": f"{NODE_IP}:{INGRESS_HTTP_PORT}",
        "https": f"{NODE_IP}:{INGRESS_HTTPS_PORT}",
    }
    state.ports = _host_ports(state)
    for name, target in targets.items():
        port = state.ports[name]
        listen = f"--listen=127.0.0.1:{port}"
        argv = [sys.executable, "-m", "localcluster.forward", listen, f"--to={target}", f"--netns={state.netns}"]
        state.forwarders[name] = _spawn(f"forward-{name}", argv, listen)
        state.save()
        forwarder = state.forwarders[name]
        wait_until(
            f"forwarder 127.0.0.1:{port} -> {target}",
            functools.partial(_answers, port),
            10,
            functools.partial(_log_tail, f"forward-{name}"),
            forwarder.running,
        )


def _write_host_kubeconfig(inside: Path, api_port: int) -> Path:
    """The cluster's admin kubeconfig with the server at the forwarded host port (the API server's certificate
    names 127.0.0.1, so it verifies as it does inside)."""
    config = yaml.safe_load(inside.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{api_port}"
    HOST_KUBECONFIG.write_text(yaml.safe_dump(config))
    HOST_KUBECONFIG.chmod(0o600)
    return HOST_KUBECONFIG


def _ready() -> dict[str, object] | None:
    path = CLUSTER_DIR / READY_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _running(state: LocalState, ready: dict[str, object]) -> RunningCluster:
    return RunningCluster(
        kubeconfig=_write_host_kubeconfig(Path(str(ready["kubeconfig"])), state.ports["api"]),
        pki=Pki.in_directory(Path(str(ready["pki"]))),
        registry_host=str(ready["registry_host"]),
        ports=dict(state.ports),
    )


def healthy(state: LocalState | None) -> bool:
    """Whether the recorded cluster is fully up: supervisor running and ready, every forwarder running."""
    return bool(
        state
        and state.supervisor
        and state.supervisor.running()
        and _ready() is not None
        and state.forwarders
        and all(forwarder.running() for forwarder in state.forwarders.values())
    )


def start_or_reuse() -> RunningCluster:
    """The running local cluster: the recorded one when it is fully up, else a new one (after removing whatever a
    failed or interrupted start left). A start that fails or is interrupted removes what it started."""
    state = LocalState.load()
    if state is not None and healthy(state):
        ready = _ready()
        assert ready is not None
        print(f"up: local cluster already running (supervisor PID {state.supervisor.pid if state.supervisor else ''})")
        return _running(state, ready)
    if state is not None or netns_exists(NETNS):
        print("up: removing what an earlier, unfinished start left")
        remove(state)
    state = LocalState(stack=state.stack if state else "", ports=state.ports if state else {})
    began = time.monotonic()
    try:
        create_netns(state.netns)
        state.save()
        CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
        RUN_LINK.unlink(missing_ok=True)
        RUN_LINK.symlink_to(CLUSTER_DIR)
        argv = [sys.executable, "-m", "localcluster.supervisor", str(RUN_LINK)]
        state.supervisor = _spawn("supervisor", in_namespaces_command(state.netns, argv), "localcluster.supervisor")
        state.save()
        supervisor = state.supervisor
        wait_until(
            "the local cluster (control plane, node, Traefik, registry)",
            lambda: _ready() is not None,
            START_TIMEOUT_SECONDS,
            lambda: _log_tail("supervisor"),
            supervisor.running,
        )
        ready = _ready()
        assert ready is not None
        _start_forwarders(state, ready)
    except BaseException:
        print(f"up: the cluster did not start; removing what was started. Its log:\n{_log_tail('supervisor')}")
        remove(state)
        raise
    print(f"up: cluster started in {time.monotonic() - began:.1f} s (control plane, node, Traefik, registry)")
    return _running(state, ready)


def _terminate(process: TrackedProcess, timeout: float) -> None:
    """SIGTERM, then SIGKILL once `timeout` has passed; never a PID that is no longer the process started."""
    if not process.running():
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if process.running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


def remove(state: LocalState | None) -> list[str]:
    """Stop and remove everything a local cluster may have left; return what could not be removed."""
    state = state or LocalState()
    for forwarder in state.forwarders.values():
        _terminate(forwarder, 5)
    if state.supervisor is not None:
        _terminate(state.supervisor, STOP_TIMEOUT_SECONDS)
    left = remove_root(CGROUP_NAME)
    delete_netns(state.netns)
    if netns_exists(state.netns):
        left.append(f"network namespace {state.netns}")
    left += [f"process {pid} in {state.netns}" for pid in netns_pids(state.netns)]
    if RUN_LINK.is_symlink():
        RUN_LINK.unlink()
    if LOCAL.is_dir():
        for entry in LOCAL.iterdir():
            if entry.name in KEPT:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    STATE_FILE.unlink(missing_ok=True)
    return left

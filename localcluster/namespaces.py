"""The named network namespace a local cluster lives in, and the commands that enter it.

The control plane, the node, its pods' bridge and kube-proxy's iptables rules exist only inside that namespace;
nothing of it appears on the host's interfaces. Processes started with `in_namespaces_command` also get a private
mount namespace, so the node's tmpfs mounts over its default state paths vanish with the last of them. Deleting the
network namespace removes its interfaces, addresses, routes and iptables rules with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000


def netns_path(name: str) -> Path:
    """Where `ip netns` keeps the namespace `name`."""
    return NETNS_DIR / name


def netns_exists(name: str) -> bool:
    """Whether the network namespace `name` exists."""
    return netns_path(name).exists()


def create_netns(name: str) -> None:
    """Create the network namespace `name` with its loopback up."""
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, text=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True, text=True)


def netns_pids(name: str) -> list[int]:
    """The processes whose network namespace is `name` (none when it does not exist)."""
    if not netns_exists(name):
        return []
    listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False).stdout
    return [int(pid) for pid in listed.split()]


def delete_netns(name: str) -> None:
    """Kill every process left in `name`, then delete it (its links, addresses and iptables rules go with it)."""
    for pid in netns_pids(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if netns_exists(name):
        subprocess.run(["ip", "netns", "delete", name], check=True, capture_output=True, text=True)


def in_namespaces_command(name: str, argv: list[str]) -> list[str]:
    """`argv` run inside network namespace `name` and a private mount namespace of its own.

    `nsenter --net` rather than `ip netns exec`, which remounts /sys and hides the cgroup mounts the kubelet needs.
    """
    return ["nsenter", f"--net={netns_path(name)}", "unshare", "--mount", "--propagation", "private", "--", *argv]


def enter_netns(name: str) -> None:
    """Move the calling thread (call it before starting others) into network namespace `name`: sockets it opens
    from now on live there, while those it opened before stay where they were made."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns_path(name), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {name}: {os.strerror(error)}")
    finally:
        os.close(fd)


def require_root() -> None:
    """Stop at once, with one line, when not root: the node needs namespaces, mounts, cgroups and iptables."""
    if os.geteuid() != 0:
        print(
            "make up: the local cluster's node needs root (network and mount namespaces, cgroups, iptables): "
            "run `sudo make up`, or deploy to your own cluster with `make up KUBECONFIG=path` (no root needed)",
            file=sys.stderr,
        )
        raise SystemExit(2)

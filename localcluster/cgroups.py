"""One cgroup root of the e2e's own, in every hierarchy, removed at the end; the host's hierarchies are never touched.

This machine kind has cgroup v1 (one mount per controller under /sys/fs/cgroup,
plus an empty v2 hierarchy at /sys/fs/cgroup/unified). The kubelet and BuildKit's
runc put their containers under a parent we name; creating it in every
hierarchy first and removing it depth-first at the end leaves the host as it was.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
REMOVE_TIMEOUT_SECONDS = 20


def hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies: each v1 controller's directory, or the v2 root alone."""
    if (CGROUP_FS / "cgroup.controllers").exists():
        return [CGROUP_FS]
    return sorted(
        path for path in CGROUP_FS.iterdir() if path.is_dir() and not path.is_symlink() and path.name != "unified"
    )


def create_root(name: str) -> None:
    """Create `/<name>` in every hierarchy (the kubelet refuses a cgroupRoot missing from any of them)."""
    for hierarchy in hierarchies():
        (hierarchy / name).mkdir(exist_ok=True)


def _pids(group: Path) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(line) for line in (group / "cgroup.procs").read_text().split()]
    return []


def _every_hierarchy() -> list[Path]:
    """The hierarchies, and the v2 one beside v1's (`unified`), where runc and the kubelet make groups too."""
    unified = CGROUP_FS / "unified"
    return hierarchies() + ([unified] if unified.is_dir() and unified not in hierarchies() else [])


def remove_root(name: str) -> list[str]:
    """Kill what is left in `/<name>` and remove it depth-first in every hierarchy (the v2 one beside v1's
    included, where runc makes its groups too); return what could not go."""
    left: list[str] = []
    for hierarchy in _every_hierarchy():
        top = hierarchy / name
        if not top.is_dir():
            continue
        groups = sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
        for group in groups:
            for pid in _pids(group):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for group in groups:
            deadline = time.monotonic() + REMOVE_TIMEOUT_SECONDS
            while True:
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        left.append(str(group))
                        break
                    time.sleep(0.1)
    return left


@contextlib.contextmanager
def cgroup_root(name: str) -> Iterator[str]:
    """`/<name>` in every hierarchy for the duration; the caller's processes in it are killed at the end."""
    create_root(name)
    try:
        yield f"/{name}"
    finally:
        left = remove_root(name)
        if left:
            raise RuntimeError(f"cgroups left behind: {left}")

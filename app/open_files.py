"""The open-files limit the server's connection bounds need, raised before any connection is held.

Container runtimes leave the soft RLIMIT_NOFILE at systemd's 1024 and the hard
limit far above it, expecting a program that needs more to raise its own soft
limit (Go's runtime does it at start). A worker may hold
`app.server.MAX_CONNECTIONS_PER_WORKER` connections and the master
`app.management.MAX_CONNECTIONS`; with a soft limit of 1024 a busy worker
would fail accept() with EMFILE long before its own bound applied.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

FILES_BESIDES_CONNECTIONS = 128
"""Descriptors a process needs besides its clients' sockets: listeners, pipes, log and metric files, imports."""


@dataclass(frozen=True)
class OpenFilesLimit:
    """The soft limit before and after, and whether it now covers what was needed."""

    before: int
    after: int
    needed: int

    @property
    def sufficient(self) -> bool:
        """Whether the process may open as many descriptors as it needs."""
        return self.after >= self.needed


def _finite(limit: int) -> int:
    return limit if limit != resource.RLIM_INFINITY else 2**31 - 1


def raise_open_files_limit(connections: int) -> OpenFilesLimit:
    """Raise the soft open-files limit to cover `connections` sockets and the process's own files, never above
    the hard limit and never lowering it; forked workers inherit it."""
    needed = connections + FILES_BESIDES_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = _finite(soft)
    if before >= needed:
        return OpenFilesLimit(before, before, needed)
    target = min(needed, _finite(hard))
    if target > before:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return OpenFilesLimit(before, max(before, target), needed)

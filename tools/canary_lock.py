"""One release at a time per stack: an exclusive lock on a file beside the stack file, held for a whole run.

Two runs on one stack would each write `canaryRelease` over the other's, and each would judge the other's canary
(both canaries' series are `job="<name>-canary"`). The lock is an `flock`: the kernel releases it when its holder
exits, however it exits, so a killed run never leaves it behind (unlike Pulumi's own lock, which `--cancel-stale-update`
removes); the file says who holds it, for the message a refused run prints.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StackBusy(Exception):
    """Another run holds the stack's lock; the message says which."""


@contextmanager
def holding(path: Path, stack: str) -> Iterator[None]:
    """Hold the lock at `path` for `stack` while the block runs; raise StackBusy at once if another run holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "a process that has not said which"
            raise StackBusy(
                f"{stack}: another run is releasing on this stack ({holder}); wait for it to end, or stop it and "
                "run this again"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} on {socket.gethostname()}")
        file.flush()
        try:
            yield
        finally:
            file.truncate(0)

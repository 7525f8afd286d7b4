"""The shutdown flag that every gunicorn worker reads for readiness.

The master flips it when SIGTERM or SIGINT arrives; workers are separate
processes, so the flag lives in an anonymous shared memory page created
before the workers are forked. A write is visible to all of them at once,
with no pipe, file or network round trip.
"""

from __future__ import annotations

import mmap

_READY = b"\x00"
_SHUTTING_DOWN = b"\x01"


class ShutdownState:
    """A one-byte flag in memory shared with every process forked after it."""

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self._page[0:1] = _READY

    @property
    def shutting_down(self) -> bool:
        """True once shutdown has begun; it never turns back."""
        return self._page[0:1] == _SHUTTING_DOWN

    def begin(self) -> None:
        """Mark the service as shutting down, for every process sharing the flag."""
        self._page[0:1] = _SHUTTING_DOWN

"""Each worker's request progress, in memory the master shares with every worker.

gunicorn's worker timeout watches the worker's main loop, which keeps
beating while every request thread is wedged (on a lock, a dead database
socket), so it never notices a threaded worker that can no longer serve.
This table lets the probes notice: each worker writes how many requests it
has in flight, how many it finished and since when all of its threads have
been busy; liveness (answered by the master, see `app.probes`) fails when a
worker has had every thread busy and finished nothing for longer than
STALL_SECONDS. A busy worker that keeps finishing requests stays alive.

The table has `slots_for(WEB_CONCURRENCY)` slots. The master assigns each worker a slot before forking it (gunicorn's
`pre_fork` hook), the worker fills it once its app is loaded
(`post_worker_init`) and marks it LEFT when it exits on purpose
(`worker_exit`), and the master clears it when the worker has exited
(`child_exit`): a slot not marked LEFT by then belonged to a worker that
crashed. Each row also counts the metric samples its worker could not
write (a full metrics directory, `app.metrics`), and the connections its
main loop holds (`app.worker`: counted against its limit, and closing), which
the master compares with the sockets the worker really has open. Slots are written by one process only; the lock below
serialises that process's request threads.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# pid, requests in flight, requests finished, saturated since (monotonic), metric samples dropped,
# connections held (counted against the worker's limit), connections closing (answered, drained until the client closes)
_SLOT = struct.Struct("<qqqdqqq")
_RESERVED = -1  # pid of a slot assigned to a worker that has not loaded its app yet
LEFT = -2
"""pid of a slot whose worker ran its exit path: it stopped on purpose (recycled, or told to stop), not crashed."""

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def slots_for(workers: int) -> int:
    """Slots a server of `workers` workers needs: twice as many, since a reload starts the new ones first."""
    return 2 * workers + 2


class ClosingBody:
    """A WSGI response body that calls `on_close` after the wrapped body is closed (werkzeug's ClosingIterator,
    without the per-request cost of its typing casts)."""

    __slots__ = ("_body", "_on_close")

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._body = body
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        """Close the wrapped body, then report the request done, even if closing it failed."""
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


@dataclass(frozen=True)
class WorkerProgress:
    """One worker's row: its pid, requests in flight and finished, since when every thread was busy, samples dropped."""

    pid: int
    in_flight: int
    completed: int
    saturated_since: float
    """time.monotonic() when every thread became busy, 0.0 while one is free (CLOCK_MONOTONIC is system-wide)."""
    dropped_samples: int = 0
    """Request metric samples this worker could not write to its metric files."""
    connections: int = 0
    """Connections the worker counts against its connection limit (in flight, kept alive, or sending their head)."""
    closing: int = 0
    """Connections the worker has answered and half-closed, drained until the client closes (not counted above)."""


class ProgressTable:
    """Per-worker request progress in an anonymous shared page, created by the master before it forks."""

    def __init__(
        self, capacity: int, threads: int, stall_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.threads = threads
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._page = mmap.mmap(-1, capacity * _SLOT.size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        # A worker's own row, kept in the process (after fork each worker has its copy) and written whole.
        self._own_slot: int | None = None
        self._lock = threading.Lock()
        self._pid = 0
        self._in_flight = 0
        self._completed = 0
        self._saturated_since = 0.0
        self._dropped = 0
        self._connections = (0, 0)

    # The master's side.
    def reserve(self) -> int | None:
        """Assign a free slot to a worker about to be forked; None when the table is full."""
        for slot in range(self.capacity):
            if self._row(slot).pid == 0:
                self._write(slot, _RESERVED, 0, 0, 0.0, 0, 0, 0)
                return slot
        return None

    def release(self, slot: int | None) -> WorkerProgress | None:
        """Free the slot of a worker that has exited; return its last row (pid LEFT if it exited on purpose)."""
        if slot is None:
            return None
        row = self._row(slot)
        self._write(slot, 0, 0, 0, 0.0, 0, 0, 0)
        return row

    # A worker's side.
    def bind(self, slot: int | None, pid: int) -> None:
        """Claim `slot` for this worker process once its app is loaded (it then counts as booted)."""
        if slot is None:
            return
        self._own_slot = slot
        self._pid, self._in_flight, self._completed, self._saturated_since, self._dropped = pid, 0, 0, 0.0, 0
        self._connections = (0, 0)
        self._write_own(slot)

    def leave(self) -> None:
        """Mark this worker's slot as exiting on purpose (from gunicorn's `worker_exit`, when it was asked to stop)."""
        slot = self._own_slot
        if slot is None:
            return
        with self._lock:
            self._pid = LEFT
            self._saturated_since = 0.0
            self._write_own(slot)

    def sample_dropped(self) -> None:
        """Count a request metric sample this worker could not write."""
        slot = self._own_slot
        if slot is None:
            return
        with self._lock:
            self._dropped += 1
            self._write_own(slot)

    def request_started(self) -> None:
        """Count a request in; note the moment the last free thread was taken."""
        slot = self._own_slot
        if slot is None:
            return
        with self._lock:
            self._in_flight += 1
            if self._in_flight >= self.threads and self._saturated_since == 0.0:
                self._saturated_since = self._clock()
            self._write_own(slot)

    def request_finished(self) -> None:
        """Count a request out: the worker made progress, so it is no longer saturated."""
        slot = self._own_slot
        if slot is None:
            return
        with self._lock:
            self._in_flight -= 1
            self._completed += 1
            self._saturated_since = 0.0
            self._write_own(slot)

    def connections_held(self, connections: int, closing: int) -> None:
        """Publish the connections this worker's main loop holds and closes (called every loop; writes on change)."""
        slot = self._own_slot
        if slot is None or self._connections == (connections, closing):
            return
        with self._lock:
            self._connections = (connections, closing)
            self._write_own(slot)

    def track(self, wsgi_app: WSGIApp) -> WSGIApp:
        """Wrap a WSGI app so each request counts in when it starts and out when its body is closed."""

        def tracked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            self.request_started()
            try:
                body = wsgi_app(environ, start_response)
            except BaseException:
                self.request_finished()
                raise
            return ClosingBody(body, self.request_finished)

        return tracked

    # Readers: the probes, in any process.
    def workers(self) -> list[WorkerProgress]:
        """The rows of workers that have loaded their app and are not exiting."""
        return [WorkerProgress(*row) for row in _SLOT.iter_unpack(self._page) if row[0] > 0]

    def dropped_samples(self) -> int:
        """Metric samples dropped by the workers holding a slot (booted, exiting or not yet reaped)."""
        return sum(row[4] for row in _SLOT.iter_unpack(self._page) if row[0] != 0)

    def any_booted(self) -> bool:
        """Whether some worker has loaded its app (readiness asks on every probe, so this stays cheap)."""
        return any(row[0] > 0 for row in _SLOT.iter_unpack(self._page))

    def stalled(self, now: float | None = None) -> list[WorkerProgress]:
        """Workers with every thread busy and nothing finished for longer than `stall_seconds`."""
        now = self._clock() if now is None else now
        limit = now - self.stall_seconds
        return [
            WorkerProgress(*row)
            for row in _SLOT.iter_unpack(self._page)
            if row[0] > 0 and row[1] >= self.threads and 0.0 < row[3] < limit
        ]

    def _row(self, slot: int) -> WorkerProgress:
        return WorkerProgress(*_SLOT.unpack_from(self._page, slot * _SLOT.size))

    def _write_own(self, slot: int) -> None:
        """Write this worker's whole row from its own state (the caller holds the lock, or is the only writer)."""
        self._write(
            slot, self._pid, self._in_flight, self._completed, self._saturated_since, self._dropped, *self._connections
        )

    def _write(self, slot: int, *row: float) -> None:
        """Write a whole row: pid, in flight, completed, saturated since, dropped samples, connections, closing."""
        _SLOT.pack_into(self._page, slot * _SLOT.size, *row)

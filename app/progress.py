"""Each worker's request progress, in memory the master shares with every worker.

gunicorn's worker timeout watches the worker's main loop, which keeps
beating while every request thread is wedged (on a lock, a dead database
socket), so it never notices a threaded worker that can no longer serve.
This table lets the probes notice: each worker writes how many requests it
has in flight, how many it finished and since when all of its threads have
been busy; liveness (answered by the master, see `app.probes`) fails when a
worker has had every thread busy and finished nothing for longer than
STALL_SECONDS. A busy worker that keeps finishing requests stays alive.

The master assigns each worker a slot before forking it (gunicorn's
`pre_fork` hook), the worker fills it once its app is loaded
(`post_worker_init`), and the master clears it when the worker exits
(`child_exit`). Slots are written by one process only; the lock below
serialises that process's request threads.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.wsgi import ClosingIterator

_SLOT = struct.Struct("<qqqd")  # pid, requests in flight, requests finished, saturated since (monotonic)
CAPACITY = mmap.PAGESIZE // _SLOT.size
"""Slots in the table: more than the largest WEB_CONCURRENCY, doubled while gunicorn replaces every worker."""
_RESERVED = -1  # pid of a slot assigned to a worker that has not loaded its app yet

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class WorkerProgress:
    """One worker's row: its pid, requests in flight and finished, and since when every thread was busy."""

    pid: int
    in_flight: int
    completed: int
    saturated_since: float
    """time.monotonic() when every thread became busy, 0.0 while one is free (CLOCK_MONOTONIC is system-wide)."""


class ProgressTable:
    """Per-worker request progress in an anonymous shared page, created by the master before it forks."""

    def __init__(self, threads: int, stall_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threads = threads
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self._own_slot: int | None = None  # set in a worker by `bind`; a per-process attribute after fork
        self._lock = threading.Lock()
        self._in_flight = 0
        self._completed = 0

    # The master's side.
    def reserve(self) -> int | None:
        """Assign a free slot to a worker about to be forked; None when the table is full."""
        for slot in range(CAPACITY):
            if self._row(slot).pid == 0:
                self._write(slot, _RESERVED, 0, 0, 0.0)
                return slot
        return None

    def release(self, slot: int | None) -> None:
        """Free the slot of a worker that has exited."""
        if slot is not None:
            self._write(slot, 0, 0, 0, 0.0)

    # A worker's side.
    def bind(self, slot: int | None, pid: int) -> None:
        """Claim `slot` for this worker process once its app is loaded (it then counts as booted)."""
        if slot is None:
            return
        self._own_slot = slot
        self._in_flight = self._completed = 0
        self._write(slot, pid, 0, 0, 0.0)

    def request_started(self) -> None:
        """Count a request in; note the moment the last free thread was taken."""
        slot = self._own_slot
        if slot is None:
            return
        with self._lock:
            self._in_flight += 1
            row = self._row(slot)
            since = row.saturated_since
            if self._in_flight >= self.threads and since == 0.0:
                since = self._clock()
            self._write(slot, row.pid, self._in_flight, self._completed, since)

    def request_finished(self) -> None:
        """Count a request out: the worker made progress, so it is no longer saturated."""
        slot = self._own_slot
        if slot is None:
            return
        with self._lock:
            self._in_flight -= 1
            self._completed += 1
            self._write(slot, self._row(slot).pid, self._in_flight, self._completed, 0.0)

    def track(self, wsgi_app: WSGIApp) -> WSGIApp:
        """Wrap a WSGI app so each request counts in when it starts and out when its body is closed."""

        def tracked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            self.request_started()
            try:
                body = wsgi_app(environ, start_response)
            except BaseException:
                self.request_finished()
                raise
            return ClosingIterator(body, self.request_finished)

        return tracked

    # Readers: the probes, in any process.
    def workers(self) -> list[WorkerProgress]:
        """The rows of workers that have loaded their app."""
        rows = (self._row(slot) for slot in range(CAPACITY))
        return [row for row in rows if row.pid > 0]

    def stalled(self, now: float | None = None) -> list[WorkerProgress]:
        """Workers with every thread busy and nothing finished for longer than `stall_seconds`."""
        now = self._clock() if now is None else now
        return [
            row
            for row in self.workers()
            if row.in_flight >= self.threads
            and row.saturated_since > 0.0
            and now - row.saturated_since > self.stall_seconds
        ]

    def _row(self, slot: int) -> WorkerProgress:
        return WorkerProgress(*_SLOT.unpack_from(self._page, slot * _SLOT.size))

    def _write(self, slot: int, pid: int, in_flight: int, completed: int, saturated_since: float) -> None:
        _SLOT.pack_into(self._page, slot * _SLOT.size, pid, in_flight, completed, saturated_since)

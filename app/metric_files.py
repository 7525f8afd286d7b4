"""The workers' metric files: space reserved before it is written, and an exited worker's samples folded away.

prometheus_client's multiprocess mode maps one file per worker and metric
type and grows it with ftruncate. On a full tmpfs (the pod's /tmp is a
memory-backed emptyDir with a size limit) the first write to a page that has
no block behind it kills the worker with SIGBUS, so every new worker dies on
its first request. `ReservedMmapedDict` reserves the blocks with
posix_fallocate before mapping them: a full directory then fails the write
with ENOSPC, which `app.metrics` turns into a dropped sample, a log line and
a metric, and the worker keeps serving.

prometheus_client leaves an exited worker's counter and histogram files in
place (they hold its share of the totals), so with worker recycling the
directory grows by two files per restart, forever. `MetricFiles.fold`, run
by the master when it reaps a worker, adds the worker's samples into two
archive files the master owns (`counter_archive.db`, `histogram_archive.db`,
which the collector sums like any worker's) and deletes the worker's files;
totals stay exact and the directory holds the live workers' files plus two.
A scrape takes the same lock, so it never sees a sample twice or not at all.
"""

from __future__ import annotations

import glob
import logging
import mmap
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

_INITIAL_BYTES = 1 << 16  # prometheus_client's initial file size
_HEADER_BYTES = 8  # the used-bytes count and its padding, written when a file is first mapped
FOLDED_TYPES = ("counter", "histogram")
"""The metric types a worker's files hold that must outlive it (its live gauges are dropped instead)."""
ARCHIVE = "archive"
"""The file name part, in place of a pid, of the files holding the samples of every exited worker."""

_log = logging.getLogger("app.metrics")


def _entry_bytes(key: str) -> int:
    """What `MmapedDict` writes for a new key: length, the key padded to 8 bytes, value and timestamp."""
    encoded = len(key.encode("utf-8"))
    return 4 + encoded + (8 - (encoded + 4) % 8) + 16


class ReservedMmapedDict(MmapedDict):
    """prometheus_client's file-backed dict, with every block reserved on disk before it is mapped."""

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        if not read_mode:
            _create_reserved(filename)
        super().__init__(filename, read_mode)  # type: ignore[no-untyped-call]

    def reserve(self, keys: Iterable[str]) -> None:
        """Make room for `keys` (those not yet in the file) at once, so writing them afterwards cannot fail."""
        needed = sum(_entry_bytes(key) for key in set(keys) if key not in self._positions)
        self._grow_to(self._used + needed)

    def _init_value(self, key: str) -> None:
        self._grow_to(self._used + _entry_bytes(key))
        super()._init_value(key)  # type: ignore[no-untyped-call]

    def _grow_to(self, needed: int) -> None:
        capacity = self._capacity
        while needed > capacity:
            capacity *= 2
        if capacity != self._capacity:
            os.posix_fallocate(self._f.fileno(), 0, capacity)  # ENOSPC here, instead of SIGBUS on first touch
            self._capacity = capacity
            self._m = mmap.mmap(self._f.fileno(), capacity)


def _create_reserved(filename: str) -> None:
    fd = os.open(filename, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size == 0:
            try:
                os.posix_fallocate(fd, 0, _INITIAL_BYTES)
            except OSError:
                os.unlink(filename)
                raise
    finally:
        os.close(fd)


def reserve_before_mapping() -> None:
    """Make this process's prometheus_client metric values use `ReservedMmapedDict` (before any is created)."""
    values.MmapedDict = ReservedMmapedDict  # type: ignore[attr-defined]  # the name MultiProcessValue looks up per file


class MetricFiles(Collector):
    """The master's side of the metrics directory: what a scrape collects, and folding exited workers' files."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._archives: dict[str, ReservedMmapedDict] = {}
        self._unfolded: set[int] = set()

    def collect(self) -> Any:
        """Every worker's and archive file, summed; never during a fold."""
        with self._lock:
            return MultiProcessCollector.merge(self._files(), accumulate=True)  # type: ignore[no-untyped-call]

    def fold(self, pid: int) -> None:
        """Add an exited worker's counters and histograms to the archive files, then delete its files.

        A fold that finds no room (a full directory) leaves the worker's files where they are (they still count at
        scrape time) and is tried again at the next fold.
        """
        with self._lock:
            mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]
            self._unfolded.add(pid)
            for waiting in sorted(self._unfolded):
                try:
                    self._fold_files_of(waiting)
                except OSError as error:
                    _log.warning(
                        "Could not fold an exited worker's metric files; they stay and still count: %s",
                        error,
                        extra={"fields": {"event": "metrics_fold_failed", "worker_pid": waiting}},
                    )
                    return
                self._unfolded.discard(waiting)

    def close(self) -> None:
        """Unmap the archive files (the master's exit)."""
        with self._lock:
            for archive in self._archives.values():
                archive.close()  # type: ignore[no-untyped-call]
            self._archives.clear()

    def _fold_files_of(self, pid: int) -> None:
        for kind in FOLDED_TYPES:
            path = Path(self.directory, f"{kind}_{pid}.db")
            if not path.exists():
                continue
            samples = [(key, value) for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))]  # type: ignore[no-untyped-call]
            archive = self._archive(kind)
            archive.reserve(key for key, _ in samples)  # all the room first: a fold is whole or not at all
            for key, value in samples:
                current, _ = archive.read_value(key)  # type: ignore[no-untyped-call]
                archive.write_value(key, current + value, 0.0)  # type: ignore[no-untyped-call]
            path.unlink()

    def _archive(self, kind: str) -> ReservedMmapedDict:
        if kind not in self._archives:
            self._archives[kind] = ReservedMmapedDict(os.path.join(self.directory, f"{kind}_{ARCHIVE}.db"))
        return self._archives[kind]

    def _files(self) -> list[str]:
        """The directory's metric files that hold at least their header (a worker may be creating one right now)."""
        ready = []
        for name in glob.glob(os.path.join(self.directory, "*.db")):
            try:
                if os.path.getsize(name) >= _HEADER_BYTES:
                    ready.append(name)
            except OSError:
                continue  # deleted by a fold since the listing
        return ready

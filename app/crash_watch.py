"""Workers dying in a loop, as the master sees them: the rule behind the probes' `crash_looping`.

gunicorn replaces a worker that dies, so a worker that crashes on every
request (a segfault in an extension, SIGBUS, an OOM kill) turns into an
endless stream of restarts while the master, which answers the probes,
stays healthy: Kubernetes would keep routing to a pod that fails a share of
its requests and never restart it. A worker that exits on purpose (recycled
by MAX_REQUESTS, told to stop) marks its progress slot first
(`app.progress.LEFT`); any other exit is a crash, recorded here by the master.

The rule: CRASH_LIMIT crashes within CRASH_WINDOW_SECONDS is a crash loop.
Readiness fails while it lasts (the pod leaves the Service's endpoints);
liveness fails once it has lasted longer than STALL_SECONDS (the kubelet
restarts the container, which starts from a clean slate).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

CRASH_LIMIT = 3
CRASH_WINDOW_SECONDS = 60.0


class CrashWatch:
    """Worker crashes over a sliding window, recorded by the master's main thread, read by its probe thread."""

    def __init__(
        self,
        limit: int = CRASH_LIMIT,
        window_seconds: float = CRASH_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.total = 0
        """Crashes since the server started."""
        self._clock = clock
        self._recent: deque[float] = deque()
        self._looping_since: float | None = None
        self._lock = threading.Lock()

    def record(self) -> None:
        """Count a worker that died without being asked to."""
        now = self._clock()
        with self._lock:
            self.total += 1
            self._forget_old(now)
            self._recent.append(now)
            if len(self._recent) >= self.limit and self._looping_since is None:
                self._looping_since = now

    def looping_for(self) -> float | None:
        """Seconds the current crash loop has lasted, or None when the workers are not crashing in a loop."""
        now = self._clock()
        with self._lock:
            self._forget_old(now)
            return None if self._looping_since is None else now - self._looping_since

    def recent(self) -> int:
        """Crashes within the window."""
        with self._lock:
            self._forget_old(self._clock())
            return len(self._recent)

    def _forget_old(self, now: float) -> None:
        while self._recent and self._recent[0] < now - self.window_seconds:
            self._recent.popleft()
        if len(self._recent) < self.limit:
            self._looping_since = None

"""A bounded HTTP load client for rollouts: keep-alive and fresh connections, every failure counted and named.

A request fails when it raises (refused, reset, timed out) or answers anything
but 200. A keep-alive connection the server ends with `Connection: close` is
reopened for the next request, as every HTTP client does; that is not a failure.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

REQUEST_TIMEOUT_SECONDS = 5.0
PAUSE_SECONDS = 0.02


def _answer(body: bytes) -> str:
    """`message version` of a 200 from `GET /`: tells an old pod's answer from a new one's (config or image)."""
    with contextlib.suppress(ValueError, AttributeError):
        answer = json.loads(body)
        return f"{answer.get('message', '')} {answer.get('version', '')}"
    return ""


@dataclass
class LoadReport:
    """What the clients saw: successes, and each failure as `what: detail`."""

    ok: int = 0
    failures: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    """Successful answers per `message version`: both the old and the new pods' appear during a rollout."""
    timeline: list[str] = field(default_factory=list)
    """Every outcome in the order it was recorded: the answer of a success, the description of a failure."""

    @property
    def total(self) -> int:
        """Every request sent."""
        return self.ok + len(self.failures)


@dataclass
class LoadClient:
    """`keepalive` threads on persistent connections and `fresh` threads opening one per request, until stopped."""

    host: str
    port: int
    path: str = "/"
    keepalive: int = 2
    fresh: int = 2
    host_header: str = ""
    report: LoadReport = field(default_factory=LoadReport)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _record(self, failure: str | None, answer: str = "") -> None:
        with self._lock:
            if failure is None:
                self.report.ok += 1
                self.report.answers[answer] += 1
            else:
                self.report.failures.append(failure)
            self.report.timeline.append(answer if failure is None else failure)

    def _one(self, connection: http.client.HTTPConnection) -> bool:
        """Send one GET; record it; return whether the connection may be reused."""
        headers = {"Host": self.host_header} if self.host_header else {}
        try:
            connection.request("GET", self.path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            self._record(f"{time.strftime('%H:%M:%S')} {type(error).__name__}: {error}")
            return False
        if response.status != 200:
            self._record(f"{time.strftime('%H:%M:%S')} HTTP {response.status}: {body[:200]!r}")
        else:
            self._record(None, _answer(body))
        return not response.will_close

    def _keepalive_loop(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_SECONDS)
        while not self._stop.is_set():
            if not self._one(connection):
                connection.close()
                connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_SECONDS)
            time.sleep(PAUSE_SECONDS)
        connection.close()

    def _fresh_loop(self) -> None:
        while not self._stop.is_set():
            connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_SECONDS)
            self._one(connection)
            connection.close()
            time.sleep(PAUSE_SECONDS)

    def __enter__(self) -> LoadClient:
        for _ in range(self.keepalive):
            self._threads.append(threading.Thread(target=self._keepalive_loop, daemon=True))
        for _ in range(self.fresh):
            self._threads.append(threading.Thread(target=self._fresh_loop, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_SECONDS * 2)

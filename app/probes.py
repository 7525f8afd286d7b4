"""The Kubernetes probes, as a plain WSGI app: liveness at /healthz, readiness at /ready.

One implementation serves two listeners. The Deployment's probes call the
management port, where the master process answers them on a thread of its
own (`app.management`), so a probe never waits behind application work.
The traffic port answers the same paths too (for load balancers that can
only check the port they send traffic to), in front of Flask: no routing,
no JSON encoding, no request metrics, logged at debug only.

Liveness: 200 `alive` while every worker makes progress; 503 `stalled` when
a worker has had every thread busy and finished nothing for STALL_SECONDS
(`app.progress`); 503 `crash_looping` when workers have been dying in a loop
for longer than STALL_SECONDS (`app.crash_watch`). Readiness: 200 `ready`;
503 `shutting_down` from the first SIGTERM or SIGINT; 503 `starting` until a
worker has loaded the app; 503 `crash_looping` while workers die in a loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from app.crash_watch import CrashWatch
from app.progress import ProgressTable, WSGIApp
from app.shutdown_state import ShutdownState

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/ready"
PROBE_PATHS = frozenset({LIVENESS_PATH, READINESS_PATH})
"""Paths the probes answer, on both ports; the access log records them at debug level only."""

_JSON_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_STATUS_LINES = {200: "200 OK", 503: "503 Service Unavailable"}


class Probes:
    """The probe verdicts, from the shared shutdown flag, the workers' progress table and (in the master) crashes."""

    def __init__(
        self,
        version: str,
        shutdown: ShutdownState,
        progress: ProgressTable | None = None,
        crashes: CrashWatch | None = None,
    ) -> None:
        self.version = version
        self.shutdown = shutdown
        self.progress = progress
        self.crashes = crashes
        self._alive = self._encode(status="alive")
        self._ready = self._encode(status="ready")
        self._shutting_down = self._encode(status="shutting_down")
        self._starting = self._encode(status="starting")

    def liveness(self) -> tuple[int, bytes]:
        """200 while the process can make progress; 503 naming the stalled workers, or a crash loop that lasts."""
        if self.progress is None:
            return 200, self._alive
        stalled = self.progress.stalled()
        if stalled:
            pids = [row.pid for row in stalled]
            return 503, self._encode(status="stalled", stalled_workers=pids, stall_seconds=self.progress.stall_seconds)
        looping = self.crashes.looping_for() if self.crashes is not None else None
        if looping is not None and looping > self.progress.stall_seconds:
            return 503, self._crash_looping(looping)
        return 200, self._alive

    def readiness(self) -> tuple[int, bytes]:
        """200 until shutdown begins, then 503; 503 too before any worker has loaded the app, and in a crash loop."""
        if self.shutdown.shutting_down:
            return 503, self._shutting_down
        looping = self.crashes.looping_for() if self.crashes is not None else None
        if looping is not None:  # before `starting`: between two crashes no worker is booted either
            return 503, self._crash_looping(looping)
        if self.progress is not None and not self.progress.any_booted():
            return 503, self._starting
        return 200, self._ready

    def _crash_looping(self, seconds: float) -> bytes:
        assert self.crashes is not None
        return self._encode(
            status="crash_looping",
            recent_crashes=self.crashes.recent(),
            window_seconds=self.crashes.window_seconds,
            looping_seconds=round(seconds, 1),
        )

    def answer(self, path: str) -> tuple[int, bytes]:
        """The verdict for one of the PROBE_PATHS."""
        return self.liveness() if path == LIVENESS_PATH else self.readiness()

    def _encode(self, **fields: Any) -> bytes:
        document = {"status": fields.pop("status"), "version": self.version, **fields}
        return json.dumps(document, separators=(",", ":")).encode()


def respond(start_response: Callable[..., Any], status: int, body: bytes) -> Iterable[bytes]:
    """Send a JSON answer with its length, for WSGI."""
    start_response(_STATUS_LINES.get(status, f"{status} Status"), [*_JSON_HEADERS, ("Content-Length", str(len(body)))])
    return [body]


def method_not_allowed(start_response: Callable[..., Any]) -> Iterable[bytes]:
    """405 for anything but GET and HEAD on the probe paths and /metrics, in the app's JSON error format."""
    body = b'{"error":"method_not_allowed","message":"The probes answer GET and HEAD only."}'
    headers = [*_JSON_HEADERS, ("Allow", "GET, HEAD"), ("Content-Length", str(len(body)))]
    start_response("405 Method Not Allowed", headers)
    return [body]


def serve_probes_in_front(wsgi_app: WSGIApp, probes: Probes) -> WSGIApp:
    """Answer GET/HEAD on the probe paths directly; pass every other request on to `wsgi_app`."""

    def probes_first(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in PROBE_PATHS:
            return wsgi_app(environ, start_response)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return method_not_allowed(start_response)
        return respond(start_response, *probes.answer(path))

    return probes_first

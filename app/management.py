"""The management listener: probes and /metrics, served by the gunicorn master on a port of its own.

Application requests run on the workers' thread pools; when every thread is
busy, anything queued behind them waits, and a kubelet probe that waits
longer than its timeout restarts a pod that was only busy. The master
process never handles application requests, so this listener, a small
threaded HTTP server on a daemon thread of the master, answers within
milliseconds however loaded the workers are. It reads the workers' state
from shared memory (`app.progress`, `app.lifecycle`) and their metric files
(`app.metrics`), and it writes no log line per request.

The socket is bound before the workers are forked (a busy port stops the
start with a clear error) and the thread starts after the first workers
exist, as gunicorn does with its own control server; workers close their
inherited copy of the socket at once.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from app.probes import Probes, method_not_allowed, serve_probes_in_front
from app.progress import WSGIApp

METRICS_PATH = "/metrics"


def management_app(probes: Probes, registry: CollectorRegistry) -> WSGIApp:
    """The WSGI app of the management port: the probes (as on the traffic port), then /metrics; GET or HEAD only."""

    def metrics(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return method_not_allowed(start_response)
        if environ.get("PATH_INFO", "") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Length", "0")])
            return []
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]

    return serve_probes_in_front(metrics, probes)


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung scrape never holds up the master's exit
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per probe: kubelet calls every few seconds per pod."""


class ManagementServer:
    """The management port's HTTP server, bound at once and served from a daemon thread when started."""

    def __init__(self, host: str, port: int, wsgi_app: WSGIApp) -> None:
        try:
            self._server = make_server(host, port, wsgi_app, _ThreadingServer, _QuietHandler)
        except OSError as error:
            raise RuntimeError(f"MANAGEMENT_PORT={port}: cannot listen on {host}:{port}: {error.strerror}") from error
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve on a daemon thread; idempotent."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="management", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (the master's exit)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def close_inherited_socket(self) -> None:
        """In a forked worker: let go of the master's listening socket without touching the master's thread."""
        self._server.socket.close()

"""The management listener: probes and /metrics, served by the gunicorn master on a port of its own.

Application requests run on the workers' thread pools; when every thread is
busy, anything queued behind them waits, and a kubelet probe that waits
longer than its timeout restarts a pod that was only busy. The master
process never handles application requests, so this listener, one selector
thread of the master that reads each request whole before answering it
(idle or slow clients cost a socket, never a thread, and at most 512 are
held; a head over MAX_HEAD_BYTES is refused, 431), answers within
milliseconds however loaded the workers are. An answered connection is
drained until the client closes (LINGER_SECONDS at most), so request bytes
it left unread never turn the close into a reset. It reads the workers' state
from shared memory (`app.progress`, `app.shutdown_state`) and their metric files
(`app.metrics`), and it writes no log line per request.

The socket is bound before the workers are forked (a busy port stops the
start with a clear error) and the thread starts after the first workers
exist, as gunicorn does with its own control server; workers close their
inherited copies of the sockets at once. Every error it answers is JSON.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from app.probes import Probes, method_not_allowed, serve_probes_in_front
from app.progress import WSGIApp
from app.request_head import head_length, read_head_bytes

METRICS_PATH = "/metrics"

_log = logging.getLogger("app.management")


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


MAX_CONNECTIONS = 512
"""Connections the management port holds at once; a new one beyond it evicts the oldest that has not sent a whole
request (one that has is answered first). A flood of silent connections therefore leaves each newcomer the time the
flood takes to open this many more to send its request: at 64 a probe whose client was descheduled for 20 ms between
connect and send was evicted under ~3,000 connections/s. A held socket costs a few KiB of kernel memory."""
CONNECTION_TIMEOUT_SECONDS = 5.0
"""A connection must have sent its request and taken its answer within this long (kubelet's probes wait 2 s)."""
MAX_HEAD_BYTES = 8 * 1024
"""The largest request head (request line and header fields) the port reads: a longer line is answered 414, a
longer head 431."""
LINGER_SECONDS = 1.0
"""How long an answered connection is drained, waiting for the client's close, so request bytes left unread never
turn the close into a reset that destroys the answer."""
_LINGER_MAX_BYTES = 64 * 1024


class _App:
    """What wsgiref's request handler asks its server for: the base environ and the WSGI app."""

    def __init__(self, wsgi_app: WSGIApp, host: str, port: int) -> None:
        self.base_environ = {
            "SERVER_NAME": host,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PORT": str(port),
            "REMOTE_HOST": "",
            "CONTENT_LENGTH": "",
            "SCRIPT_NAME": "",
        }
        self._wsgi_app = wsgi_app

    def get_app(self) -> WSGIApp:
        """The management WSGI app."""
        return self._wsgi_app


class _JsonServerHandler(ServerHandler):
    """wsgiref's response writer, whose answer to an app that raised is the app's JSON 500, logged as JSON."""

    error_body = b'{"error":"internal_server_error","message":"The management server hit an unexpected error."}'
    error_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(error_body)))]  # noqa: RUF012

    def log_exception(self, exc_info: Any) -> None:
        """Log the failure (with its traceback) as one JSON line instead of printing to stderr."""
        _log.error("Management request failed", exc_info=exc_info, extra={"fields": {"event": "management_error"}})


class _BufferedRequest(WSGIRequestHandler):
    """wsgiref's request parsing and WSGI call, on a request head already read, answering into a buffer."""

    default_request_version = "HTTP/1.0"  # an unparsable request still gets a status line and headers

    def __init__(self, head: bytes, client_address: tuple[str, int], server: _App) -> None:
        # Not BaseRequestHandler.__init__: there is no socket to set up, only the bytes the selector has read.
        length = head_length(head)
        self._oversized = length is None or length > MAX_HEAD_BYTES
        self.rfile = io.BytesIO(head)
        self.wfile = self._answer = io.BytesIO()
        self.client_address = client_address
        self.server = server  # type: ignore[assignment]
        self._app = server
        self.request_version = self.default_request_version
        self.command = ""
        self.requestline = ""  # http.server reads it when answering, even before a request line was parsed
        self.handle()

    def handle(self) -> None:
        """Parse one request and run the app (wsgiref's handle, with the JSON error handler)."""
        self.raw_requestline = self.rfile.readline(MAX_HEAD_BYTES + 1)
        if len(self.raw_requestline) > MAX_HEAD_BYTES:
            self.send_error(414)
            return
        if self._oversized:
            self.send_error(431, f"The request head exceeds {MAX_HEAD_BYTES} bytes.")
            return
        if not self.parse_request():
            return
        handler = _JsonServerHandler(self.rfile, self._answer, sys.stderr, self.get_environ(), multithread=False)
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self._app.get_app())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A malformed request gets the app's JSON error, not http.server's HTML page."""
        short = self.responses.get(code, ("Error", ""))[0]
        body = json.dumps(
            {"error": short.lower().replace(" ", "_"), "message": message or explain or f"{short}."},
            separators=(",", ":"),
        ).encode()
        self.close_connection = True
        self.send_response(code, short)
        for name, value in _JSON_ERROR_HEADERS:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def address_string(self) -> str:
        """The client's address, never a reverse DNS lookup."""
        return str(self.client_address[0])

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No line per probe: kubelet calls every few seconds per pod."""

    def log_message(self, format: str, *args: Any) -> None:
        """No line per probe: kubelet calls every few seconds per pod."""

    def answer(self) -> bytes:
        """Everything written in answer."""
        return self._answer.getvalue()


_JSON_ERROR_HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Connection", "close"))


class _Connection:
    """One client of the management port: the bytes read so far, then the answer still to send, then (answered)
    what it still sends, drained until it closes."""

    __slots__ = ("address", "deadline", "drained", "received", "sock", "unsent")

    def __init__(self, sock: socket.socket, address: tuple[str, int]) -> None:
        self.sock = sock
        self.address = address
        self.deadline = time.monotonic() + CONNECTION_TIMEOUT_SECONDS
        self.received = bytearray()
        self.unsent: bytes | None = None
        self.drained: int | None = None
        """Bytes discarded since the answer was sent; None until then."""


class ManagementServer:
    """The management port: one selector thread that reads each request whole, answers it, and closes.

    A client that connects and says nothing costs a socket until CONNECTION_TIMEOUT_SECONDS, never a
    thread; at most MAX_CONNECTIONS are held. Requests are parsed and answered by wsgiref's handler.
    """

    def __init__(self, host: str, port: int, wsgi_app: WSGIApp) -> None:
        try:
            self._listener = socket.create_server((host, port), backlog=128)
        except OSError as error:
            raise RuntimeError(f"MANAGEMENT_PORT={port}: cannot listen on {host}:{port}: {error.strerror}") from error
        self._listener.setblocking(False)
        self._app = _App(wsgi_app, host, port)
        self._connections: dict[socket.socket, _Connection] = {}
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def listener(self) -> socket.socket:
        """The listening socket (forked workers inherit a copy until `close_inherited_socket`)."""
        return self._listener

    def start(self) -> None:
        """Serve on a daemon thread; idempotent. The master calls it every loop: a thread that died (which no
        request can make it do) is replaced, its connections closed, and the restart logged."""
        if self._thread is not None and not self._thread.is_alive() and not self._stopping.is_set():
            _log.error("The management thread died; restarting it", extra={"fields": {"event": "management_restart"}})
            for connection in list(self._connections.values()):
                self._close(connection)
            if self._selector is not None:
                self._selector.close()
            self._thread = None
        if self._thread is None:
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._listener, selectors.EVENT_READ)
            self._thread = threading.Thread(target=self._serve, name="management", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop serving and close every socket (the master's exit)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for connection in list(self._connections.values()):
            self._close(connection)
        if self._selector is not None:
            self._selector.close()
        self._listener.close()

    def close_inherited_socket(self) -> None:
        """In a forked worker: let go of the master's listening socket and connections, never touching its thread."""
        self._listener.close()
        for sock in list(self._connections):
            sock.close()
        if self._selector is not None:
            self._selector.close()

    def _serve(self) -> None:
        assert self._selector is not None
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.25):
                if key.fileobj is self._listener:
                    self._accept()
                    continue
                try:
                    self._on_ready(key.data)
                except Exception:  # one connection's failure closes that connection, never the port's thread
                    _log.exception("Management connection failed", extra={"fields": {"event": "management_error"}})
                    self._close(key.data)
            self._expire()

    def _accept(self) -> None:
        assert self._selector is not None
        while True:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE) and self._connections:
                    # Out of descriptors (the open-files limit could not be raised): a held connection gives way.
                    self._make_room(below=len(self._connections))
                    continue
                return  # ECONNABORTED and the like: the client is gone
            if len(self._connections) >= MAX_CONNECTIONS:
                self._make_room()
            sock.setblocking(False)
            connection = _Connection(sock, address)
            self._connections[sock] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _make_room(self, below: int = MAX_CONNECTIONS) -> None:
        """Hold fewer than `below` connections, to free a slot for a new one: the oldest ones still being read are
        read first (a probe's request may have arrived since the last select: it is answered, not evicted); the
        oldest that has sent no whole request is closed. Connections are held in the order they arrived, so the
        oldest come first without sorting."""
        for connection in list(self._connections.values()):
            if connection.unsent is None:
                self._read(connection)
            if len(self._connections) < below:
                return
            if connection.sock in self._connections and (connection.unsent is None or connection.drained is not None):
                self._close(connection)  # it sent no whole request, or it has had its answer
                return
        self._close(next(iter(self._connections.values())))

    def _on_ready(self, connection: _Connection) -> None:
        if connection.drained is not None:
            self._drain(connection)
        elif connection.unsent is None:
            self._read(connection)
        else:
            self._write(connection)

    def _read(self, connection: _Connection) -> None:
        ended = read_head_bytes(connection.sock, connection.received, MAX_HEAD_BYTES)
        if ended is None:
            self._close(connection)
            return
        if ended or len(connection.received) > MAX_HEAD_BYTES:
            head = bytes(connection.received)
            connection.unsent = _BufferedRequest(head, connection.address, self._app).answer()
            assert self._selector is not None
            self._selector.modify(connection.sock, selectors.EVENT_WRITE, connection)
            self._write(connection)

    def _write(self, connection: _Connection) -> None:
        assert connection.unsent is not None
        try:
            sent = connection.sock.send(connection.unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)
            return
        connection.unsent = connection.unsent[sent:]
        if not connection.unsent:
            self._linger(connection)

    def _linger(self, connection: _Connection) -> None:
        """The answer is sent: half-close (FIN) and drain what the client still sends until it closes, for
        LINGER_SECONDS and _LINGER_MAX_BYTES at most (a head refused as too long left the rest of it unread)."""
        connection.drained = 0
        connection.deadline = min(connection.deadline, time.monotonic() + LINGER_SECONDS)
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_WR)
        assert self._selector is not None
        self._selector.modify(connection.sock, selectors.EVENT_READ, connection)
        self._drain(connection)

    def _drain(self, connection: _Connection) -> None:
        assert connection.drained is not None
        while connection.drained < _LINGER_MAX_BYTES:
            try:
                data = connection.sock.recv(MAX_HEAD_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                break
            if not data:
                break
            connection.drained += len(data)
        self._close(connection)

    def _expire(self) -> None:
        now = time.monotonic()
        for connection in [c for c in self._connections.values() if c.deadline < now]:
            self._close(connection)

    def _close(self, connection: _Connection) -> None:
        self._connections.pop(connection.sock, None)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(connection.sock)
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_WR)  # a FIN now, even if a worker forked since holds a copy
        connection.sock.close()

"""The gunicorn worker: threads for requests, the main loop for everything a client may be slow at.

gunicorn's threaded worker hands a connection to a request thread as soon as
its first byte arrives, and the thread then reads the rest of the request
head with no deadline: 64 clients sending half a head hold 8 threads forever,
and silent connections hold one for 5 s each. Here the worker's main loop
(one selector, no thread) reads every request head without blocking, on new
connections and kept-alive ones alike, and a thread gets the connection only
once the head is complete. So a slow or silent client costs a socket and at
most MAX_HEAD_BYTES of memory, never a thread:

- a head must be complete within HEAD_TIMEOUT_SECONDS of the connection
  (or, on a kept-alive connection, of the next request's first byte); a
  partial one is answered 408, a connection that sent nothing is closed;
- a head larger than MAX_HEAD_BYTES is answered 431;
- each worker holds at most `worker_connections` connections, so memory
  stays bounded however many clients stall; when they are all taken, a new
  client takes the slot of one that has proved least: a connection that has
  sent nothing, oldest first; else the oldest head still arriving; only when
  no head is left, a kept-alive connection waiting for its next request,
  the longest idle first (a proxy's pooled connections are never pushed out
  by silent ones). Each is read before it gives way: one whose bytes have
  arrived is served, not evicted unread. The new client waits in no listen
  queue behind clients that do nothing.

A connection is counted against the limit once, when it is accepted, and
counted out once, whichever path ends it first (`_close`, `_end`); an event
the selector reported for a connection that an earlier callback of the same
batch closed is skipped, never handled on a closed socket.

Nor does a client cost a thread or the loop's time once it has its answer:

- a connection that ends (`Connection: close`, a malformed request, a
  refusal) is half-closed and then drained by the main loop as bytes arrive,
  for LINGER_SECONDS at most, never by a blocking read; gunicorn's graceful
  close waited in `recv` on the loop, 2 s for each client that kept its side
  open, while every other client of the worker waited;
- a request body the app did not read is discarded only if it has already
  arrived; a body still to come closes the connection instead of holding the
  request thread for 5 s.

The wait for a thread counts in the request's latency: the app's metrics
start the clock when the head is complete (`HEAD_COMPLETE_KEY`).

The worker also drains before it stops (see `app.server`): told to stop, it
accepts every connection already queued on the listening socket, then
closes its copy of the socket at once, instead of holding it open (and
letting new connections pile up to be reset) until its last request ends.
From the first shutdown signal every response says `Connection: close`.
Every error the server itself answers (a malformed request, a late head) is
the app's JSON error, never gunicorn's HTML page.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import _DEFER, STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from app.request_head import HEAD_COMPLETE_KEY, head_ended, read_head_bytes
from app.shutdown_state import ShutdownState

MAX_HEAD_BYTES = 64 * 1024
"""The largest request head (request line and header fields) a worker buffers; nginx allows 32 KiB by default."""
_RECV_BYTES = 16 * 1024
_SILENT_CONNECTION_LINGER_SECONDS = 2.0
"""Once stopping, how long a connection that has sent nothing may still start a request."""
LINGER_SECONDS = 2.0
"""How long a closing connection is drained (RFC 9112 9.6) waiting for the client's own close: gunicorn's figure."""
_LINGER_MAX_BYTES = 64 * 1024
BODY_DISCARD_SECONDS = 0.05
"""How long a request thread may spend discarding a body the app did not read before the connection is closed."""
ACCEPT_BACKOFF_SECONDS = 0.5
"""How long a worker stops accepting after accept() failed for want of resources (file descriptors, memory)."""
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def error_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection, with the app's JSON error body."""
    body = json.dumps(
        {"error": reason.lower().replace(" ", "_"), "message": message or f"{reason}."}, separators=(",", ":")
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Cache-Control: no-store\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's `util.write_error`, answering with the app's JSON error instead of an HTML page."""
    util.write_nonblock(sock, error_response(status_int, reason, mesg))


class DrainingThreadWorker(ThreadWorker):
    """gunicorn's threaded worker: request heads read by the main loop, and a drain before letting go of the socket."""

    def init_process(self) -> None:
        """Refuse TLS (raw head reads would break it; TLS ends at the ingress), then gunicorn's start.

        gunicorn writes its own error answers (malformed requests) with `util.write_error`; in this worker
        process they become the app's JSON errors.
        """
        if self.cfg.is_ssl:
            raise RuntimeError("DrainingThreadWorker reads request heads itself and cannot serve TLS")
        util.write_error = write_json_error
        self.head_timeout = float(self.app.settings.head_timeout_seconds)
        self.aborted = False
        self._accept_paused_until = 0.0
        # Connections counted against the limit (`nr_conns` is always its size).
        self._live: set[TConn] = set()
        # Connections whose head is still arriving, oldest deadline first (dicts keep insertion order), and those
        # of them that have sent nothing yet, the first to give way at the limit.
        self._heads: dict[TConn, None] = {}
        self._silent: dict[TConn, None] = {}
        # Half-closed sockets being drained until the client closes, oldest deadline first.
        self._lingering: dict[socket.socket, list[float]] = {}
        # No cap on kept-alive connections below the connection limit: at the limit the idlest makes way instead.
        self.max_keepalived = self.worker_connections
        self._request_state = threading.local()
        super().init_process()

    def load_wsgi(self) -> None:
        """gunicorn's app loading; the app then sees when its request's head was complete (HEAD_COMPLETE_KEY)."""
        super().load_wsgi()
        wsgi_app: Callable[..., Iterable[bytes]] = self.wsgi  # type: ignore[has-type]
        state = self._request_state

        def stamped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            environ[HEAD_COMPLETE_KEY] = getattr(state, "head_complete", None)
            return wsgi_app(environ, start_response)

        self.wsgi = stamped

    def handle_abort(self, sig: int, frame: Any) -> None:
        """SIGABRT, the master's answer to a worker that stopped notifying it (its timeout): not an exit on purpose."""
        self.aborted = True
        super().handle_abort(sig, frame)

    def exited_on_purpose(self) -> bool:
        """Whether this worker is ending because it was asked to (SIGTERM, SIGQUIT, max_requests), not because an
        exception or the master's timeout ended it: gunicorn calls `worker_exit` from a `finally` either way."""
        return not self.alive and not getattr(self, "aborted", False)

    def init_signals(self) -> None:
        """gunicorn's worker signals, but SIGINT is left to the master's drain."""
        super().init_signals()
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    # Reading heads on the main loop.
    def accept(self, listener: Any) -> None:
        """Accept a connection and wait for its request head on the main loop, not on a thread."""
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno in _RESOURCE_ERRNOS:
                self._pause_accepting(error)
                return
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = TConn(self.cfg, client, address, listener.getsockname())
        self._count(conn)
        self._make_room()
        self._await_head(conn)

    # Counting connections: each one in once and out once.
    def _count(self, conn: TConn) -> None:
        self._live.add(conn)
        self.nr_conns = len(self._live)

    def _release(self, conn: TConn) -> bool:
        """Count `conn` out; False if it already was (whoever ends a connection second does nothing)."""
        if conn not in self._live:
            return False
        self._live.discard(conn)
        self.nr_conns = len(self._live)
        return True

    def _close(self, conn: TConn) -> None:
        """End `conn` at once, owing it no answer: counted out, forgotten, closed; only the first call acts."""
        if self._release(conn):
            self._forget_head(conn)
            conn.close()

    def _end(self, conn: TConn) -> None:
        """End an answered (or refused) `conn`: counted out, forgotten, half-closed and drained (`_linger`)."""
        if self._release(conn):
            self._forget_head(conn)
            self._linger(conn.sock)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """gunicorn's dispatch, skipping an event whose connection an earlier callback of the same batch closed or
        re-registered (eviction, a read made before it): its key is no longer the one registered for its fd.

        During a pause in accepting (`_pause_accepting`) the wait ends when the pause does, so the loop polls the
        listener again then rather than up to a whole `timeout` later."""
        paused_for = self._accept_paused_until - time.monotonic()
        if paused_for > 0 and not self._accepting:
            timeout = min(timeout, paused_for)
        try:
            events = self.poller.select(timeout)
        except InterruptedError:
            return
        registered = self.poller.get_map()
        for key, _ in events:
            if registered.get(key.fd) is key:
                key.data(key.fileobj)

    # The connection limit.
    def _idlest(self) -> TConn | None:
        """The connection that gives way to a new client: the oldest that has sent nothing, else the oldest head
        still arriving, else (no head left) the longest-idle kept-alive one."""
        for waiting in (self._silent, self._heads):
            if waiting:
                return next(iter(waiting))
        return self.keepalived_conns[0] if self.keepalived_conns else None

    def _make_room(self) -> None:
        """Above the limit, evict the idlest connection, reading each candidate first: one whose bytes have arrived
        is served instead (or refused, or found closed: a slot freed) and the next candidate is tried."""
        while self.nr_conns > self.worker_connections:
            conn = self._idlest()
            if conn is None:
                return
            if self._sent_nothing_new(conn):
                self._log_eviction(conn)
                if conn in self._heads:
                    self._close(conn)
                else:
                    self.keepalived_conns.remove(conn)  # the first: O(1)
                    self._close_kept_alive(conn)

    def _sent_nothing_new(self, conn: TConn) -> bool:
        """Read what `conn` has sent, as its readable event would; True if there was nothing (it may be evicted)."""
        if conn in self._heads:
            before = len(conn.head)
            self._read_head(conn, conn.sock)
            return conn in self._heads and len(conn.head) == before
        try:
            conn.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True  # idle
        except OSError:
            pass  # reset: reading it below drops it
        self.on_client_socket_readable(conn, conn.sock)  # its next request, or its close, as its event would
        return False

    def _close_kept_alive(self, conn: TConn) -> None:
        """Close an idle kept-alive connection already taken off `keepalived_conns`."""
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self._close(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        """gunicorn's expiry of idle kept-alive connections (all of them if `force`), each counted out once."""
        now = time.monotonic()
        while self.keepalived_conns and (force or self.keepalived_conns[0].timeout <= now):
            self._close_kept_alive(self.keepalived_conns.popleft())

    def _log_eviction(self, conn: TConn) -> None:
        """Say at debug level which connection gave way to a new client (kind and peer), and how many heads, and
        silent ones among them, were held besides: the adversarial tests (`bench/adversary.py`) check each client's
        lost request against these lines, and the eviction order against the counts."""
        if not self.log.error_log.isEnabledFor(logging.DEBUG):
            return
        kind = "silent" if conn in self._silent else "partial" if conn in self._heads else "idle"
        fields: dict[str, Any] = {"event": "connection_evicted", "kind": kind, "remote_port": _port(conn)}
        fields["heads_held"] = len(self._heads) - (conn in self._heads)
        fields["silent_held"] = len(self._silent) - (conn in self._silent)
        self.log.debug("Evicted a connection for a new client", extra={"fields": fields})

    def _pause_accepting(self, error: OSError) -> None:
        """Out of file descriptors or memory: stop accepting for a moment instead of dying (the connections in
        flight finish, which frees what accepting needs), and say so once per pause.

        The listener leaves the selector even while connections are held: `set_accept_enabled` keeps it there at
        the connection limit for a new client to take the idlest one's slot, but a client that cannot be accepted
        takes nothing, and a listener left readable would fail accept() on every turn of the loop. Polling resumes
        once the pause is over (`set_accept_enabled(True)`, asked by gunicorn's loop below the limit and by
        `_resume_accepting_if_idle` at it); the loop's wait is cut short to that moment
        (`wait_for_and_dispatch_events`)."""
        self._accept_paused_until = time.monotonic() + ACCEPT_BACKOFF_SECONDS
        ThreadWorker.set_accept_enabled(self, False)
        self.log.warning(
            "accept() failed (%s): not accepting for %g s",
            error.strerror,
            ACCEPT_BACKOFF_SECONDS,
            extra={"fields": {"event": "accept_paused", "errno": error.errno}},
        )

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection has bytes of its next request: read its head on the main loop."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)
        self._read_head(conn, client)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """After a request thread: the connection is kept alive, or reads its next request's head (pipelined bytes
        already read, or none yet), or ends, drained by this loop and never waited on."""
        result = fs.result() if not fs.cancelled() and fs.exception() is None else False
        if result is _DEFER:  # nothing read yet (cannot happen: a thread gets a whole head); read it on this loop
            self._await_head(conn)
        elif result and conn.parser is not None and (buffered := conn.parser.unreader.take_buffered()):
            self._await_head(conn, buffered)
        elif result:
            self._keep_alive(conn)
        else:
            self._end(conn)
        self._resume_accepting_if_idle()

    def _keep_alive(self, conn: TConn) -> None:
        """Wait, on the main loop, for the next request of a connection whose answer promised keep-alive (briefly,
        once stopping: its request is answered with `Connection: close`)."""
        conn.sock.setblocking(False)
        conn.set_timeout()
        if not self.alive:
            conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
        self.keepalived_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        """Keep the connection only if the body the app left unread has already arrived (gunicorn would wait 5 s
        for it in this thread); otherwise it closes, and the main loop drains what comes. A body that turns out
        malformed while it is discarded closes the connection too: its answer has been sent, and gunicorn would
        write a second one (its 400) after it."""
        if not keepalive:
            return False
        try:
            return bool(conn.parser.finish_body(deadline=time.monotonic() + BODY_DISCARD_SECONDS))
        except Exception:  # gunicorn's parse errors (a bad chunk, an oversized extension) and socket errors alike
            return False

    def _linger(self, sock: socket.socket) -> None:
        """Half-close `sock` (the answer is complete: FIN) and drain it as bytes arrive until the client closes or
        LINGER_SECONDS pass, so unread request bytes never turn the close into a reset that truncates the answer."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, self._drain_lingering)
        except (OSError, ValueError, KeyError):
            util.close(sock)
            return
        self._lingering[sock] = [time.monotonic() + LINGER_SECONDS, 0.0]

    def _drain_lingering(self, sock: socket.socket) -> None:
        state = self._lingering.get(sock)
        if state is None:
            return
        while True:
            try:
                data = sock.recv(_RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                break
            state[1] += len(data)
            if not data or state[1] >= _LINGER_MAX_BYTES:
                break
        self._end_lingering(sock)

    def _end_lingering(self, sock: socket.socket) -> None:
        self._lingering.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(sock)
        util.close(sock)

    def handle(self, conn: TConn) -> Any:
        """Serve a connection whose complete head the main loop has read: the parser starts from those bytes."""
        head = bytes(getattr(conn, "head", b""))
        if head:
            conn.head = bytearray()
            conn.data_ready = True  # gunicorn's wait for a first byte is for connections no one has read yet
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(head)
        return super().handle(conn)

    def murder_pending(self) -> None:
        """gunicorn's expiry of deferred connections (each loop), and of heads past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        if self.alive:  # oldest deadline first: the first one not yet due ends the scan
            while self._heads:
                conn = next(iter(self._heads))
                if conn.timeout > now:
                    break
                self._expire_head(conn)
        else:  # stopping: silent connections had their deadlines brought forward, out of order
            for conn in [c for c in self._heads if c.timeout <= now]:
                self._expire_head(conn)
        while self._lingering:
            sock, (deadline, _) = next(iter(self._lingering.items()))
            if deadline > now:
                break
            self._end_lingering(sock)
        self._resume_accepting_if_idle()
        self.app.progress.connections_held(self.nr_conns, len(self._lingering))

    def _resume_accepting_if_idle(self) -> None:
        """Accept again at the connection limit once some connection is idle enough to give way to a new client."""
        if not self._accepting and self.alive and self._idlest() is not None:
            self.set_accept_enabled(True)

    def _expire_head(self, conn: TConn) -> None:
        if conn.head:
            message = f"The request head did not arrive within {self.head_timeout:g} s."
            self._refuse(conn, 408, "Request Timeout", message)
        else:
            self._close(conn)

    def _await_head(self, conn: TConn, received: bytes = b"") -> None:
        # A bytearray: a client that sends its head a byte at a time costs appends, not a copy of the whole per byte.
        conn.head = bytearray(received)
        conn.timeout = time.monotonic() + self.head_timeout
        if not self.alive and not received:
            conn.timeout = min(conn.timeout, time.monotonic() + _SILENT_CONNECTION_LINGER_SECONDS)
        conn.sock.setblocking(False)
        self._heads[conn] = None
        if not received:
            self._silent[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_head, conn))
        if received:
            self._check_head(conn, head_ended(conn.head))

    def _read_head(self, conn: TConn, client: Any) -> None:
        ended = read_head_bytes(conn.sock, conn.head, _RECV_BYTES)
        if ended is None:  # the client closed (or reset) before its head was complete
            self._close(conn)
            return
        if conn.head:
            self._silent.pop(conn, None)
        self._check_head(conn, ended)

    def _check_head(self, conn: TConn, ended: bool) -> None:
        """Hand the connection to a thread once its head has `ended`; refuse a head over MAX_HEAD_BYTES."""
        if ended:
            self._forget_head(conn)
            conn.head_complete = time.perf_counter()
            self.enqueue_req(conn)
        elif len(conn.head) > MAX_HEAD_BYTES:
            message = f"The request head exceeds {MAX_HEAD_BYTES} bytes."
            self._refuse(conn, 431, "Request Header Fields Too Large", message)

    def _refuse(self, conn: TConn, status: int, reason: str, message: str) -> None:
        with contextlib.suppress(OSError):  # the client has gone or its buffer is full; it gets the close
            conn.sock.send(error_response(status, reason, message))
        self.log.info(
            "Refused a request: %s",
            message,
            extra={"fields": {"event": "request_refused", "status": status, "remote_addr": _address(conn)}},
        )
        self._end(conn)

    def _forget_head(self, conn: TConn) -> None:
        self._heads.pop(conn, None)
        self._silent.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    # Stopping.
    def handle_request(self, req: Any, conn: Any) -> Any:
        """gunicorn's request handling; a response whose headers are written once shutdown has begun closes
        the connection (`Connection: close`), so clients reconnect to pods that stay.

        gunicorn asks the request whether to close when it writes the response headers, after the response,
        and again before parsing the next request on the connection: the first answer is kept for all three,
        so a connection whose response promised keep-alive still serves the request that follows.
        """
        self._request_state.head_complete = getattr(conn, "head_complete", None)
        shutdown: ShutdownState = self.app.shutdown
        asked_by_client = req.should_close
        verdict: list[bool] = []

        def should_close() -> bool:
            if not verdict:
                verdict.append(shutdown.shutting_down or bool(asked_by_client()))
            return verdict[0]

        req.should_close = should_close
        return super().handle_request(req, conn)

    def set_accept_enabled(self, enabled: bool) -> None:
        """Stop polling the listeners; on shutdown, also accept what is queued and close them. Accepting resumes
        only once a pause for want of resources is over (gunicorn's loop asks every iteration)."""
        if enabled and time.monotonic() < self._accept_paused_until:
            return
        if not enabled and self.alive and self._idlest() is not None:
            return  # at the connection limit, a new client takes the idlest connection's slot (see `accept`)
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            self._accept_queued_then_close()
            linger = time.monotonic() + _SILENT_CONNECTION_LINGER_SECONDS
            for conn in self._heads:
                if not conn.head:
                    conn.timeout = min(conn.timeout, linger)

    def _accept_queued_then_close(self) -> None:
        for listener in self.sockets:
            if listener.sock is None:  # already closed by an earlier call
                continue
            listener.setblocking(False)
            for _ in range(self.cfg.backlog):  # bounded even under a flood
                try:
                    client, address = listener.accept()
                except OSError as error:
                    if error.errno == errno.ECONNABORTED:
                        continue
                    break  # EAGAIN: the queue is empty
                conn = TConn(self.cfg, client, address, listener.getsockname())
                self._count(conn)
                self._await_head(conn)
            listener.close()


def _address(conn: TConn) -> str | None:
    client = conn.client
    return str(client[0]) if isinstance(client, tuple) and client else None


def _port(conn: TConn) -> int | None:
    client = conn.client
    return int(client[1]) if isinstance(client, tuple) and len(client) > 1 else None

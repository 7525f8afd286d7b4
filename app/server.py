"""gunicorn, with a shutdown that drains before it stops.

Plain gunicorn stops at once on SIGTERM: the master closes its listeners and
tells workers to exit, and connections still queued in the kernel are reset
when the last worker closes the socket (gunicorn issues #2529 and #3397).
SIGINT is its quick shutdown. Behind a Kubernetes Service that loses
requests on every rollout. This module changes three things, all tied to the
pinned gunicorn 27.0.1 (`app/requirements.txt`):

1. `DrainingArbiter` (the master): SIGTERM or SIGINT flips the shared
   readiness flag, so `/ready` answers 503 in every worker at once, and the
   server keeps serving for DRAIN_SECONDS. Repeated SIGTERM/SIGINT are
   counted and ignored from then on. Only SIGQUIT (gunicorn's quick
   shutdown) or SIGKILL cut the shutdown short.
2. When the drain ends, the master stops the listening socket admitting new
   connections (`app.listener`: a filter that drops new SYNs, so a late
   client is refused later, never reset), waits for handshakes already under
   way, then runs gunicorn's own graceful stop: workers get SIGTERM and have
   GRACEFUL_TIMEOUT_SECONDS to finish in-flight requests; the master exits 0.
3. `app.worker.DrainingThreadWorker`: when told to stop, a worker first
   accepts every connection already queued on the listening socket, then
   closes its copy of the socket at once. Workers ignore SIGINT, so a
   terminal's Ctrl-C, sent to the whole process group, reaches them only
   through the master's drain. From the first shutdown signal every response
   says `Connection: close`, so keep-alive clients and proxies move to other
   pods during the drain instead of finding the connection closed when the
   worker exits. The worker also reads request heads on its main loop, so
   slow clients never hold a request thread.

Around that: the master answers the probes and /metrics on the management
port (`app.management`), from the workers' progress (`app.progress`) and
metric files (`app.metrics`); idle keep-alive connections stay open for
KEEPALIVE_SECONDS, longer than the proxies in front keep theirs, so the
proxy, not the app, closes an idle connection first.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

if TYPE_CHECKING:
    from app.management import ManagementServer
    from app.metric_files import MetricFiles
    from app.metrics import ServerCollector

from app import metrics_directory
from app.crash_watch import CrashWatch
from app.early_signals import SHUTDOWN_SIGNALS, take_held_signals
from app.jsonlog import configure_logging, log_lifecycle_event
from app.listener import refuse_new_connections
from app.open_files import raise_open_files_limit
from app.progress import LEFT, ProgressTable, slots_for
from app.settings import AppSettings
from app.shutdown_state import ShutdownState

MAX_CONNECTIONS_PER_WORKER = 1000
"""Connections one worker holds at once (in flight, kept alive or sending their head); above it, it stops accepting.

With `app.worker.MAX_HEAD_BYTES` this bounds what stalled clients can cost a worker: 1000 x 64 KiB."""

HANDSHAKE_GRACE_SECONDS = 0.1
"""After new SYNs are refused, how long handshakes already under way get to reach the accept queue."""


class DrainingArbiter(Arbiter):
    """gunicorn's master process, with a readiness drain before the graceful stop."""

    shutdown: ShutdownState
    drain_seconds: float

    def __init__(self, app: WebServer) -> None:
        super().__init__(app)
        self.shutdown = app.shutdown
        self.drain_seconds = float(app.settings.drain_seconds)
        self._drain_deadline: float | None = None
        self._ignored_signals = 0
        self._ignored_logged = 0
        self.crashes = CrashWatch()
        self.management: ManagementServer | None = None
        self.metric_files: MetricFiles | None = None
        self.server_metrics: ServerCollector | None = None

    def start(self) -> None:
        """gunicorn's start (listeners, hooks), then bind the management port before any worker is forked."""
        super().start()
        from app.management import ManagementServer, management_app
        from app.metric_files import MetricFiles
        from app.metrics import ServerCollector, management_registry
        from app.probes import Probes

        self._raise_open_files_limit()
        settings = self.app.settings
        progress = self.app.progress
        probes = Probes(settings.version, self.shutdown, progress, self.crashes)
        self.metric_files = MetricFiles(self.app.metrics_dir)
        self.server_metrics = ServerCollector(
            settings.version, self.shutdown, progress, self.crashes, listener_inodes=self._listener_inodes
        )
        registry = management_registry(self.metric_files, self.server_metrics)
        self.management = ManagementServer("0.0.0.0", settings.management_port, management_app(probes, registry))

    def _listener_inodes(self) -> frozenset[int]:
        """The listening sockets a worker inherits from this process: not among its clients' sockets."""
        from app.open_sockets import socket_inodes

        listeners = [listener.sock for listener in self.LISTENERS if listener.sock is not None]
        if self.management is not None:
            listeners.append(self.management.listener)
        return socket_inodes(listeners)

    def _raise_open_files_limit(self) -> None:
        from app.management import MAX_CONNECTIONS

        connections = max(MAX_CONNECTIONS_PER_WORKER, MAX_CONNECTIONS)
        limit = raise_open_files_limit(connections)
        if not limit.sufficient:
            self.log.warning(
                "The open-files limit is %d and its hard limit allows no more; a process may hold %d connections "
                "and needs %d descriptors, so accept() fails with EMFILE before that bound",
                limit.after,
                connections,
                limit.needed,
                extra={"fields": {"event": "open_files_limit_low", "limit": limit.after, "needed": limit.needed}},
            )

    def worker_exited(self, worker: Any) -> None:
        """A reaped worker: free its progress slot, fold its metric files, and count it if it crashed."""
        row = self.app.progress.release(getattr(worker, "progress_slot", None))
        if row is not None and self.server_metrics is not None:
            self.server_metrics.dropped_by_exited_workers += row.dropped_samples
        if self.metric_files is not None:
            self.metric_files.fold(worker.pid)
        if row is not None and row.pid != LEFT and not self.shutdown.shutting_down:
            self.crashes.record()
            self.log.warning(
                "Worker %s died without being asked to (%d in the last %gs)",
                worker.pid,
                self.crashes.recent(),
                self.crashes.window_seconds,
                extra={"fields": {"event": "worker_crashed", "worker_pid": worker.pid}},
            )

    def init_signals(self) -> None:
        """gunicorn's handlers, then the shutdown signals caught while the server was starting (as PID 1 they
        would otherwise be lost), queued as if they had just arrived."""
        super().init_signals()
        for sig in take_held_signals():
            self.signal(sig, None)

    # Signal handler: runs between bytecodes of the master, so it only queues.
    def signal(self, sig: int, frame: Any) -> None:
        """Queue the signal, except repeated SIGTERM/SIGINT once shutdown has begun."""
        if self._drain_deadline is not None and sig in SHUTDOWN_SIGNALS:
            self._ignored_signals += 1
            return
        super().signal(sig, frame)

    def handle_term(self) -> None:
        """SIGTERM: begin the drain instead of stopping at once."""
        self._begin_drain("SIGTERM")

    def handle_int(self) -> None:
        """SIGINT: the same drain as SIGTERM (gunicorn would stop at once)."""
        self._begin_drain("SIGINT")

    def _begin_drain(self, signame: str) -> None:
        self.shutdown.begin()
        self._drain_deadline = time.monotonic() + self.drain_seconds
        log_lifecycle_event(
            self.log,
            "draining",
            f"{signame} received: /ready answers 503; serving for {self.drain_seconds:g}s before stopping",
            signal=signame,
            drain_seconds=self.drain_seconds,
        )

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        """Wait as gunicorn does, but wake up when the drain ends."""
        if self._drain_deadline is not None:
            timeout = max(0.0, min(timeout, self._drain_deadline - time.monotonic()))
        signals: list[int] = super().wait_for_signals(timeout)
        return signals

    def manage_workers(self) -> None:
        """Keep the worker count (gunicorn's per-loop step), and end the drain when it is due."""
        if self._drain_deadline is not None:
            if self._ignored_signals > self._ignored_logged:
                self._ignored_logged = self._ignored_signals
                self.log.info(
                    "Shutdown already under way; ignored a repeated SIGTERM/SIGINT (send SIGQUIT to stop at once)",
                    extra={"fields": {"event": "signal_ignored", "count": self._ignored_signals}},
                )
            if time.monotonic() >= self._drain_deadline:
                # Every listener, no short-circuit: each one must stop admitting.
                filtered = [refuse_new_connections(listener.sock) for listener in self.LISTENERS]
                refused = all(filtered)
                log_lifecycle_event(
                    self.log,
                    "stopping",
                    "Drain over: refusing new connections, finishing queued and in-flight requests",
                    graceful_timeout_seconds=self.cfg.graceful_timeout,
                    syn_filter=refused,
                )
                time.sleep(HANDSHAKE_GRACE_SECONDS)
                raise StopIteration  # Arbiter.run() answers with halt(): graceful stop, exit 0
        super().manage_workers()
        if self.management is not None:
            self.management.start()  # after the first workers are forked; a no-op afterwards


def _when_ready(server: Arbiter) -> None:
    log_lifecycle_event(server.log, "started", "Server ready", pid=server.pid, workers=server.num_workers)


def _on_exit(server: DrainingArbiter) -> None:
    if server.management is not None:
        server.management.stop()
    if server.metric_files is not None:
        server.metric_files.close()
    metrics_directory.remove_directory(server.app.metrics_dir)
    log_lifecycle_event(server.log, "stopped", "Server stopped", pid=server.pid)


def _pre_fork(server: DrainingArbiter, worker: Any) -> None:
    # In the master: the slot this worker will report its progress in.
    worker.progress_slot = server.app.progress.reserve()
    if worker.progress_slot is None:
        server.log.warning("Progress table full: this worker is not watched for stalls")


def _post_fork(server: DrainingArbiter, worker: Any) -> None:
    # In the new worker: the management socket belongs to the master alone.
    if server.management is not None:
        server.management.close_inherited_socket()


def _post_worker_init(worker: Any) -> None:
    # In the worker, its app loaded: from now on it counts as booted for readiness and is watched for stalls.
    worker.app.progress.bind(worker.progress_slot, os.getpid())


def _worker_exit(server: DrainingArbiter, worker: Any) -> None:
    # In the worker, from gunicorn's `finally`: every exit gets here, so only one it was asked for is marked as such.
    # An exception or the master's timeout abort leaves the slot unmarked, and the master counts a crash.
    if worker.exited_on_purpose():
        worker.app.progress.leave()


def _child_exit(server: DrainingArbiter, worker: Any) -> None:
    # In the master, the worker reaped.
    server.worker_exited(worker)


def gunicorn_options(settings: AppSettings) -> dict[str, Any]:
    """The gunicorn settings this service runs with, derived from its environment."""
    return {
        "bind": [f"0.0.0.0:{settings.port}"],
        "workers": settings.workers,
        "threads": settings.threads,
        "worker_class": "app.worker.DrainingThreadWorker",
        "worker_connections": MAX_CONNECTIONS_PER_WORKER,
        "graceful_timeout": settings.graceful_timeout_seconds,
        "timeout": 30,
        "keepalive": settings.keepalive_seconds,
        "max_requests": settings.max_requests,
        "max_requests_jitter": settings.max_requests // 10,
        "loglevel": settings.log_level,
        "logger_class": "app.jsonlog.GunicornJsonLogger",
        "accesslog": "-",
        "errorlog": "-",
        # The runtime control socket would be written under $HOME, which is
        # read-only in the pod, and nobody operates it there.
        "control_socket_disable": True,
        # Heartbeat files on tmpfs: /tmp is an emptyDir in the pod.
        "worker_tmp_dir": "/dev/shm" if _writable_dir("/dev/shm") else None,
        "when_ready": _when_ready,
        "on_exit": _on_exit,
        "pre_fork": _pre_fork,
        "post_fork": _post_fork,
        "post_worker_init": _post_worker_init,
        "worker_exit": _worker_exit,
        "child_exit": _child_exit,
        "proc_name": "webapp",
    }


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK)


class WebServer(BaseApplication):
    """The Flask app under gunicorn, configured in code and run by `DrainingArbiter`."""

    def __init__(self, settings: AppSettings, app_factory: Callable[..., Any] | None = None) -> None:
        self.settings = settings
        # Created before the fork, so every worker shares them.
        self.shutdown = ShutdownState()
        self.progress = ProgressTable(slots_for(settings.workers), settings.threads, settings.stall_seconds)
        self.metrics_dir = metrics_directory.use_fresh_directory()
        self._app_factory = app_factory
        super().__init__()

    def load_config(self) -> None:
        """Apply `gunicorn_options`; gunicorn validates each value."""
        for key, value in gunicorn_options(self.settings).items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        """Build the WSGI app in each worker, wired to the shared shutdown flag, progress table and metrics."""
        if self._app_factory is not None:
            return self._app_factory()
        from app.factory import create_app
        from app.metrics import RequestMetrics

        return create_app(
            settings=self.settings,
            shutdown=self.shutdown,
            progress=self.progress,
            metrics=RequestMetrics(self.progress),
        )

    def run(self) -> None:
        """Run the master loop with the draining arbiter (gunicorn's own run() hardcodes Arbiter)."""
        try:
            DrainingArbiter(self).run()
        except RuntimeError as error:
            logging.getLogger("app.server").error(
                "Server failed to start: %s", error, extra={"fields": {"event": "start_failed"}}
            )
            metrics_directory.remove_directory(self.metrics_dir)
            sys.exit(1)


def main() -> None:
    """Entry point of `python -m app`: parse the environment, log JSON, serve."""
    from app.errors import SettingsError

    try:
        settings = AppSettings.from_env()
    except SettingsError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)
    try:
        server = WebServer(settings)
    except OSError as error:  # the metrics directory: no writable temporary directory
        logging.getLogger("app.server").error(
            "Server failed to start: cannot create the metrics directory: %s",
            error,
            extra={"fields": {"event": "start_failed"}},
        )
        sys.exit(1)
    server.run()

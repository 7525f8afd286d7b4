"""Prometheus metrics, exact across gunicorn workers and worker restarts.

prometheus_client's multiprocess mode: each worker writes its samples to
memory-mapped files named after its pid in PROMETHEUS_MULTIPROC_DIR, and
the master sums every file when /metrics is scraped on the management port
(`app.management`), so a scrape never waits behind application work and a
restarted worker's counts are kept. prometheus_client picks that mode when
it is first imported, so `app.metrics_directory.use_fresh_directory` must run
before anything imports this module; `app.server` imports it only then.

Every label comes from a closed set, so no client can grow the metrics:
the URL rule that matched (`/items/<id>`, never the raw path) or
`<unmatched>`, the method folded to the standard ones or `other`, and the
status code the app answered.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from flask import Flask, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from app.crash_watch import CrashWatch
from app.metric_files import MetricFiles, reserve_before_mapping
from app.metrics_directory import ENV_VAR
from app.open_sockets import open_client_sockets
from app.progress import ClosingBody, ProgressTable, WorkerProgress, WSGIApp
from app.request_head import HEAD_COMPLETE_KEY
from app.shutdown_state import ShutdownState

ROUTE_KEY = "webapp.route"

"""The WSGI environ key under which Flask leaves the matched URL rule for the metrics."""
UNMATCHED_ROUTE = "<unmatched>"
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
"""RFC 9110's methods and PATCH; any other method a client sends is counted as OTHER_METHOD."""
OTHER_METHOD = "other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds; the last finite bucket is gunicorn's worker timeout."""
DROPPED_LOG_INTERVAL_SECONDS = 60.0
"""A worker that cannot write its metric files says so at most this often (the metric counts every sample)."""

_log = logging.getLogger("app.metrics")


class RequestMetrics:
    """Request count and latency by method, route and status, recorded by a WSGI wrapper around the Flask app.

    Requests in flight are not recorded here: the master reads them from the progress table at scrape time.
    A sample that cannot be written (a full metrics directory) is dropped: counted in `progress`, logged at most
    once a minute, and the request is served all the same.
    """

    def __init__(self, progress: ProgressTable | None = None) -> None:
        reserve_before_mapping()
        self._progress = progress
        self._last_drop_logged = -DROPPED_LOG_INTERVAL_SECONDS
        # registry=None: in multiprocess mode the master's collector reads every worker's files instead.
        labels = ("method", "route", "status")
        self.requests = Counter("webapp_http_requests", "HTTP requests answered.", labels, registry=None)
        self.latency = Histogram(
            "webapp_http_request_duration_seconds",
            "Time from the request's head being read to the end of its response body (the wait for a thread included).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        # The labelled children, looked up once per label set: `labels()` validates and locks on every call.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def record(self, method: str, route: str, status: str, seconds: float) -> None:
        """Count one answered request and its latency; drop the sample if the metric files have no room."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            try:  # a new label set is the only write that needs new room in the files
                children = (self.requests.labels(*key), self.latency.labels(*key))
            except OSError as error:
                self._dropped(error)
                return
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def _dropped(self, error: OSError) -> None:
        if self._progress is not None:
            self._progress.sample_dropped()
        now = time.monotonic()
        if now - self._last_drop_logged >= DROPPED_LOG_INTERVAL_SECONDS:
            self._last_drop_logged = now
            _log.warning(
                "Cannot write request metrics (%s); samples are dropped and counted in webapp_metric_samples_dropped",
                error.strerror or error,
                extra={"fields": {"event": "metrics_dropped", "directory": os.environ.get(ENV_VAR, "")}},
            )

    def instrument(self, flask_app: Flask, wsgi_app: WSGIApp) -> WSGIApp:
        """Wrap `wsgi_app` (Flask's, or a wrapper of it) so every request it answers is recorded once."""
        flask_app.before_request(_remember_route)

        def measured(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            started = environ.get(HEAD_COMPLETE_KEY) or time.perf_counter()
            status = ["500"]  # what the server answers if the app raises before starting a response

            def recording_start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                status[0] = line[:3]
                return start_response(line, headers, exc_info)

            def finished() -> None:
                method = environ.get("REQUEST_METHOD", "")
                method = method if method in STANDARD_METHODS else OTHER_METHOD
                self.record(method, environ.get(ROUTE_KEY, UNMATCHED_ROUTE), status[0], time.perf_counter() - started)

            try:
                body = wsgi_app(environ, recording_start_response)
            except BaseException:
                finished()
                raise
            return ClosingBody(body, finished)

        return measured


def _remember_route() -> None:
    rule = request.url_rule
    request.environ[ROUTE_KEY] = rule.rule if rule is not None else UNMATCHED_ROUTE


class ServerCollector(Collector):
    """What the master reads at scrape time: draining, workers, requests in flight, stalls, crashes, dropped samples,
    the workers' connections against their open sockets, and the build."""

    def __init__(
        self,
        version: str,
        shutdown: ShutdownState,
        progress: ProgressTable,
        crashes: CrashWatch | None = None,
        listener_inodes: Callable[[], Collection[int]] | None = None,
    ) -> None:
        self.version = version
        self.shutdown = shutdown
        self.progress = progress
        self.crashes = crashes
        self.listener_inodes = listener_inodes
        """The inodes of the listening sockets the workers share, left out of their open sockets (None: not read)."""
        self.dropped_by_exited_workers = 0
        """Samples dropped by workers that have exited (added by the master when it reaps each)."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        """Yield the server's gauges and its build info."""
        yield GaugeMetricFamily(
            "webapp_draining", "1 from the first SIGTERM/SIGINT: /ready answers 503.", int(self.shutdown.shutting_down)
        )
        workers = self.progress.workers()
        yield GaugeMetricFamily("webapp_workers", "Workers that have loaded the app.", len(workers))
        yield GaugeMetricFamily(
            "webapp_http_requests_in_flight", "Requests being handled now.", sum(row.in_flight for row in workers)
        )
        yield from self._connections(workers)
        yield GaugeMetricFamily(
            "webapp_stalled_workers",
            "Workers with every thread busy and nothing finished for STALL_SECONDS (liveness fails).",
            len(self.progress.stalled()),
        )
        yield CounterMetricFamily(
            "webapp_metric_samples_dropped",
            "Request samples the workers could not write to their metric files (a full metrics directory).",
            self.dropped_by_exited_workers + self.progress.dropped_samples(),
        )
        if self.crashes is not None:
            yield CounterMetricFamily(
                "webapp_worker_crashes", "Workers that died without being asked to.", self.crashes.total
            )
        yield InfoMetricFamily("webapp_build", "The running build.", value={"version": self.version})

    def _connections(self, workers: list[WorkerProgress]) -> Iterator[GaugeMetricFamily]:
        """The workers' own count of their connections, and what the kernel says they hold: at rest, the open
        sockets are the connections held plus those closing; a difference that stays is a bookkeeping bug."""
        yield GaugeMetricFamily(
            "webapp_worker_connections",
            "Connections the workers count against their limit (in flight, kept alive, or sending a head).",
            sum(row.connections for row in workers),
        )
        yield GaugeMetricFamily(
            "webapp_worker_closing_connections",
            "Connections the workers answered and drain until the client closes (not counted against the limit).",
            sum(row.closing for row in workers),
        )
        if self.listener_inodes is None:
            return
        excluded = self.listener_inodes()
        counts = [open_client_sockets(row.pid, excluded) for row in workers]
        if None not in counts:
            yield GaugeMetricFamily(
                "webapp_worker_open_sockets",
                "Sockets the workers have open besides their listeners, as the kernel lists them (/proc/<pid>/fd).",
                sum(count or 0 for count in counts),
            )


def management_registry(files: MetricFiles, server: ServerCollector) -> CollectorRegistry:
    """The registry the master scrapes: every worker's and exited workers' samples, plus the server's own."""
    registry = CollectorRegistry()
    registry.register(files)
    registry.register(server)
    return registry

"""Prometheus metrics, exact across gunicorn workers and worker restarts.

prometheus_client's multiprocess mode: each worker writes its samples to
memory-mapped files named after its pid in PROMETHEUS_MULTIPROC_DIR, and
the master sums every file when /metrics is scraped on the management port
(`app.management`), so a scrape never waits behind application work and a
restarted worker's counts are kept. prometheus_client picks that mode when
it is first imported, so `app.multiprocess.use_fresh_directory` must run
before anything imports this module; `app.server` imports it only then.

Request metrics are labelled by the URL rule that matched (`/items/<id>`,
never the raw path, which would grow without bound) or `<unmatched>`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, request
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from app.lifecycle import ShutdownState
from app.progress import ClosingBody, ProgressTable, WSGIApp

ROUTE_KEY = "webapp.route"
"""The WSGI environ key under which Flask leaves the matched URL rule for the metrics."""
UNMATCHED_ROUTE = "<unmatched>"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds; the last finite bucket is gunicorn's worker timeout."""


class RequestMetrics:
    """Request count and latency by method, route and status, recorded by a WSGI wrapper around the Flask app.

    Requests in flight are not recorded here: the master reads them from the progress table at scrape time.
    """

    def __init__(self) -> None:
        # registry=None: in multiprocess mode the master's collector reads every worker's files instead.
        labels = ("method", "route", "status")
        self.requests = Counter("webapp_http_requests", "HTTP requests answered.", labels, registry=None)
        self.latency = Histogram(
            "webapp_http_request_duration_seconds",
            "Time from the request reaching the app to the end of its response body.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        # The labelled children, looked up once per label set: `labels()` validates and locks on every call.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def record(self, method: str, route: str, status: str, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(*key), self.latency.labels(*key))
        children[0].inc()
        children[1].observe(seconds)

    def instrument(self, flask_app: Flask, wsgi_app: WSGIApp) -> WSGIApp:
        """Wrap `wsgi_app` (Flask's, or a wrapper of it) so every request it answers is recorded once."""
        flask_app.before_request(_remember_route)

        def measured(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            started = time.perf_counter()
            status = ["500"]  # what the server answers if the app raises before starting a response

            def recording_start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                status[0] = line[:3]
                return start_response(line, headers, exc_info)

            def finished() -> None:
                method, route = environ.get("REQUEST_METHOD", ""), environ.get(ROUTE_KEY, UNMATCHED_ROUTE)
                self.record(method, route, status[0], time.perf_counter() - started)

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
    """What the master reads at scrape time: draining, workers, requests in flight, stalls and the build."""

    def __init__(self, version: str, shutdown: ShutdownState, progress: ProgressTable) -> None:
        self.version = version
        self.shutdown = shutdown
        self.progress = progress

    def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        """Yield the server's gauges and its build info."""
        yield GaugeMetricFamily(
            "webapp_draining", "1 from the first SIGTERM/SIGINT: /ready answers 503.", int(self.shutdown.shutting_down)
        )
        workers = self.progress.workers()
        yield GaugeMetricFamily("webapp_workers", "Workers that have loaded the app.", len(workers))
        yield GaugeMetricFamily(
            "webapp_http_requests_in_flight", "Requests being handled now.", sum(row.in_flight for row in workers)
        )
        yield GaugeMetricFamily(
            "webapp_stalled_workers",
            "Workers with every thread busy and nothing finished for STALL_SECONDS (liveness fails).",
            len(self.progress.stalled()),
        )
        yield InfoMetricFamily("webapp_build", "The running build.", value={"version": self.version})


def management_registry(version: str, shutdown: ShutdownState, progress: ProgressTable) -> CollectorRegistry:
    """The registry the master scrapes: every worker's files plus the server's own gauges."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(ServerCollector(version, shutdown, progress))
    return registry


def forget_worker(pid: int) -> None:
    """Drop an exited worker's live gauges (its counters stay: totals must not go down)."""
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

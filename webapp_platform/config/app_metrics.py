"""The app's metrics as the alerts and the dashboard read them: the series names and the latency histogram's bounds.

The app defines its metrics (app/metrics.py), and its image carries no copy of
this program, so the names the program relies on are written here once.
tests/test_metric_contract.py scrapes a real running app and fails if any name
here, or any series an alert or a dashboard panel reads, is not what it exports.
"""

from __future__ import annotations

from dataclasses import dataclass

BUNDLED_PREFIX = "webapp_"
"""The prefix of the bundled app's series (app/metrics.py)."""


@dataclass(frozen=True)
class MetricNames:
    """The series an app publishes under one prefix (the app contract's `metrics.prefix`), as the alerts and the
    dashboard read them."""

    prefix: str = BUNDLED_PREFIX

    @property
    def requests(self) -> str:
        """Counter of answered requests, labelled method, route and status (the HTTP status code)."""
        return f"{self.prefix}http_requests_total"

    @property
    def duration_bucket(self) -> str:
        """Latency histogram buckets (`le`), labelled method, route and status."""
        return f"{self.prefix}http_request_duration_seconds_bucket"

    @property
    def duration_count(self) -> str:
        return f"{self.prefix}http_request_duration_seconds_count"

    @property
    def in_flight(self) -> str:
        return f"{self.prefix}http_requests_in_flight"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    @property
    def stalled_workers(self) -> str:
        """Workers with every thread busy and nothing finished for STALL_SECONDS (liveness then fails)."""
        return f"{self.prefix}stalled_workers"

    @property
    def worker_crashes(self) -> str:
        return f"{self.prefix}worker_crashes_total"

    @property
    def draining(self) -> str:
        return f"{self.prefix}draining"

    @property
    def dropped_samples(self) -> str:
        return f"{self.prefix}metric_samples_dropped_total"

    @property
    def build_info(self) -> str:
        return f"{self.prefix}build_info"

    def all(self) -> tuple[str, ...]:
        """Every series name above."""
        return (
            self.requests,
            self.duration_bucket,
            self.duration_count,
            self.in_flight,
            self.workers,
            self.stalled_workers,
            self.worker_crashes,
            self.draining,
            self.dropped_samples,
            self.build_info,
        )


BUNDLED = MetricNames()
"""The bundled app's series."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""The histogram's finite bucket bounds in seconds: a latency objective must be one of them, or no series counts it."""

CLUSTER_METRICS = frozenset(
    {
        "kube_pod_container_status_restarts_total",  # kube-state-metrics
        "kube_pod_container_status_ready",  # kube-state-metrics
        "prober_probe_total",  # the kubelet's /metrics/probes
        "up",  # Prometheus itself, per scrape target
    }
)
"""Series the alerts read that come from the cluster's own exporters, not from the app."""


def bucket_label(seconds: float) -> str:
    """The `le` label value prometheus_client writes for a bucket bound (0.5 -> "0.5", 1.0 -> "1.0")."""
    return repr(float(seconds))

"""The app's metrics as the alerts and the dashboard read them: the series names and the latency histogram's bounds.

The app defines its metrics (app/metrics.py), and its image carries no copy of
this program, so the names the program relies on are written here once.
tests/test_metric_contract.py scrapes a real running app and fails if any name
here, or any series an alert or a dashboard panel reads, is not what it exports.
"""

from __future__ import annotations

REQUESTS = "webapp_http_requests_total"
"""Counter of answered requests, labelled method, route and status (the HTTP status code)."""
DURATION_BUCKET = "webapp_http_request_duration_seconds_bucket"
"""Latency histogram buckets (`le`), labelled method, route and status."""
DURATION_COUNT = "webapp_http_request_duration_seconds_count"
IN_FLIGHT = "webapp_http_requests_in_flight"
WORKERS = "webapp_workers"
STALLED_WORKERS = "webapp_stalled_workers"
"""Workers with every thread busy and nothing finished for STALL_SECONDS (liveness then fails)."""
WORKER_CRASHES = "webapp_worker_crashes_total"
DRAINING = "webapp_draining"
DROPPED_SAMPLES = "webapp_metric_samples_dropped_total"
BUILD_INFO = "webapp_build_info"

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

"""The app's Grafana dashboard, as Grafana's JSON model: traffic, errors and latency against the objectives, and the
server's own state (in flight, workers, stalls, crashes, draining, dropped samples, running version).

One dashboard per stack (its uid and title name the stack), every query scoped to
the stack's series like the alerts (`components.alert_rules.Scope`); the failed and
slow shares are the alerts' own ratios, over Grafana's range instead of the burn windows. Grafana's
sidecar loads it from a ConfigMap labelled `grafana_dashboard: "1"`. The tests hold
it to Grafana's own schema (toolchain/grafanacheck) and its queries to Prometheus's parser.
"""

from __future__ import annotations

from typing import Any

from webapp_platform.components.alert_rules import Scope, failed_ratio, slow_ratio
from webapp_platform.config.monitoring import MetricsSettings

RATE = "$__rate_interval"
"""Grafana's range for rate(): at least four scrape intervals."""
SCHEMA_VERSION = 39
PANEL_WIDTH = 12
PANEL_HEIGHT = 8


def _panel(index: int, title: str, unit: str, targets: list[tuple[str, str]], description: str) -> dict[str, Any]:
    """A time-series panel, two per row, with one query per (expression, legend) pair."""
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {
            "x": (index % 2) * PANEL_WIDTH,
            "y": (index // 2) * PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "h": PANEL_HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {"refId": chr(ord("A") + number), "expr": expr, "legendFormat": legend}
            for number, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(scope: Scope, stack: str, metrics: MetricsSettings) -> dict[str, Any]:
    """The dashboard's JSON model for one stack."""
    app = scope.app()
    seconds = metrics.latency_objective_seconds
    buckets = f"sum by (le) (rate({scope.names.duration_bucket}{app}[{RATE}]))"
    panels = [
        (
            "Requests per second by status",
            "reqps",
            [(f"sum by (status) (rate({scope.names.requests}{app}[{RATE}]))", "{{status}}")],
            "Every answered request, by HTTP status (probes are not counted: they go to the management port).",
        ),
        (
            f"Failed requests (objective: {100 - metrics.availability_objective:.3g} % or less)",
            "percentunit",
            [(failed_ratio(scope, RATE), "5xx share")],
            "The share of requests answered with a 5xx: what the availability alert burns its budget on.",
        ),
        (
            "Latency quantiles",
            "s",
            [(f"histogram_quantile({q}, {buckets})", f"p{round(q * 100)}") for q in (0.5, 0.9, 0.99)],
            "From the app's histogram: time from the request reaching the app to the end of its response.",
        ),
        (
            f"Requests slower than {seconds:g} s (objective: {100 - metrics.latency_objective_percent:.3g} % or less)",
            "percentunit",
            [(slow_ratio(scope, RATE, seconds), "slow share")],
            "What the latency alert burns its budget on.",
        ),
        (
            "Requests in flight",
            "short",
            [(f"sum by (pod) ({scope.names.in_flight}{app})", "{{pod}}")],
            "Requests being handled now, per pod.",
        ),
        (
            "Workers and stalled workers",
            "short",
            [
                (f"sum by (pod) ({scope.names.workers}{app})", "workers {{pod}}"),
                (f"sum by (pod) ({scope.names.stalled_workers}{app})", "stalled {{pod}}"),
            ],
            "A stalled worker has every thread busy and has finished nothing for STALL_SECONDS; liveness then fails.",
        ),
        (
            "Worker crashes and dropped metric samples",
            "short",
            [
                (f"sum by (pod) (increase({scope.names.worker_crashes}{app}[{RATE}]))", "crashes {{pod}}"),
                (f"sum by (pod) (increase({scope.names.dropped_samples}{app}[{RATE}]))", "dropped {{pod}}"),
            ],
            "Workers that died unasked (three in a minute fail readiness); samples lost to a full /tmp.",
        ),
        (
            "Draining pods and running versions",
            "short",
            [
                (f"sum({scope.names.draining}{app})", "draining"),
                (f"count by (version) ({scope.names.build_info}{app})", "{{version}}"),
            ],
            "Pods between SIGTERM and exit (their /ready answers 503); pods per running version during a rollout.",
        ),
    ]
    return {
        "uid": f"webapp-{stack}",
        "title": f"webapp ({stack}): {scope.name} in {scope.namespace}",
        "tags": ["webapp", stack],
        "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            ]
        },
        "panels": [_panel(index, *panel) for index, panel in enumerate(panels)],
    }

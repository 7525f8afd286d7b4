"""The app's Prometheus rules: SLO burn-rate alerts on availability and latency, and alerts on its pods and workers.

The burn-rate alerts follow the Google SRE workbook's multiwindow, multi-burn-rate
scheme against a 30-day objective: a fast burn (2 % of the budget in an hour) and a
steady one (5 % in six hours) page; a slow one (10 % in a day) opens a ticket. Each
window's ratio is a recording rule, so Prometheus computes it once per evaluation.
`tests/test_metric_contract.py` parses every expression with Prometheus's own parser
and holds every series they read to what the app and the cluster export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp_platform.config import app_metrics
from webapp_platform.config.monitoring import MetricsSettings


@dataclass(frozen=True)
class BurnRate:
    """A pair of windows whose error ratios must both exceed `factor` times the budget, and how urgent that is."""

    long_window: str
    short_window: str
    factor: float
    severity: str


BURN_RATES = (
    BurnRate("1h", "5m", 14.4, "critical"),
    BurnRate("6h", "30m", 6.0, "critical"),
    BurnRate("1d", "2h", 3.0, "warning"),
)
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
WINDOWS = tuple(
    sorted(
        {window for rate in BURN_RATES for window in (rate.long_window, rate.short_window)},
        key=lambda window: int(window[:-1]) * _UNIT_SECONDS[window[-1]],
    )
)
"""Every window a burn rate reads, shortest first: one recording rule per window and objective."""
SLOW_REQUEST = "webapp:http_requests_slow:ratio_rate"
FAILED_REQUEST = "webapp:http_requests_failed:ratio_rate"
"""Recorded ratios (level:metric:operations), suffixed with their window: the share of slow or failed requests."""
SERVER_ERROR = 'status=~"5.."'
LIVENESS_FAILED = ('probe_type="Liveness"', 'result="failed"')


@dataclass(frozen=True)
class Scope:
    """Which series are this stack's: the ServiceMonitor's job (the Service's name) in the stack's namespace, and
    their names."""

    namespace: str
    name: str
    names: app_metrics.MetricNames = app_metrics.BUNDLED
    """The series the app publishes (its contract's metrics prefix)."""

    def app(self, *matchers: str) -> str:
        """A label selector for the app's own series, with extra matchers."""
        return _selector(f'namespace="{self.namespace}"', f'job="{self.name}"', *matchers)

    def pods(self, *matchers: str) -> str:
        """A label selector for the cluster exporters' series about this Deployment's pods."""
        return _selector(f'namespace="{self.namespace}"', f'pod=~"{self.name}-[a-z0-9]+-[a-z0-9]+"', *matchers)


def _selector(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


def failed_ratio(scope: Scope, window: str) -> str:
    """The share of requests answered with a 5xx over `window`."""
    requests = scope.names.requests
    return (
        f"sum by (namespace, job) (rate({requests}{scope.app(SERVER_ERROR)}[{window}]))"
        f" / sum by (namespace, job) (rate({requests}{scope.app()}[{window}]))"
    )


def slow_ratio(scope: Scope, window: str, seconds: float) -> str:
    """The share of requests slower than `seconds` (a bucket bound of the app's histogram) over `window`."""
    bucket = 'le="' + app_metrics.bucket_label(seconds) + '"'
    return (
        f"1 - sum by (namespace, job) (rate({scope.names.duration_bucket}{scope.app(bucket)}[{window}]))"
        f" / sum by (namespace, job) (rate({scope.names.duration_count}{scope.app()}[{window}]))"
    )


def _burn_alert(name: str, recorded: str, *, scope: Scope, budget: float, rate: BurnRate, what: str) -> dict[str, Any]:
    threshold = f"({rate.factor:g} * {budget:g})"
    return {
        "alert": name,
        "expr": f"{recorded}{rate.long_window}{scope.app()} > {threshold}"
        f" and {recorded}{rate.short_window}{scope.app()} > {threshold}",
        "labels": {"severity": rate.severity, "burn_window": rate.long_window},
        "annotations": {
            "summary": f"{scope.name} in {scope.namespace} is spending its {what} error budget "
            f"{rate.factor:g} times too fast",
            "description": f"Over the last {rate.long_window} (and {rate.short_window}) "
            "{{ $value | humanizePercentage }} of requests " + f"were {what} failures; at this pace the 30-day "
            "budget runs out early. See docs/runbook.md.",
        },
    }


def rule_groups(scope: Scope, metrics: MetricsSettings) -> list[dict[str, Any]]:
    """The PrometheusRule's `spec.groups`: the recorded ratios, the SLO alerts and the pod and worker alerts."""
    availability_budget = round(1 - metrics.availability_objective / 100, 6)
    latency_budget = round(1 - metrics.latency_objective_percent / 100, 6)
    seconds = metrics.latency_objective_seconds
    recordings = [
        {"record": f"{FAILED_REQUEST}{window}", "expr": failed_ratio(scope, window)} for window in WINDOWS
    ] + [{"record": f"{SLOW_REQUEST}{window}", "expr": slow_ratio(scope, window, seconds)} for window in WINDOWS]
    slo_alerts = [
        _burn_alert(
            "WebappAvailabilityBudgetBurn",
            FAILED_REQUEST,
            scope=scope,
            budget=availability_budget,
            rate=rate,
            what="availability",
        )
        for rate in BURN_RATES
    ] + [
        _burn_alert(
            "WebappLatencyBudgetBurn",
            SLOW_REQUEST,
            scope=scope,
            budget=latency_budget,
            rate=rate,
            what=f"latency (> {seconds:g} s)",
        )
        for rate in BURN_RATES
    ]
    return [
        {"name": f"{scope.name}.{scope.namespace}.slo-ratios", "interval": "30s", "rules": recordings},
        {"name": f"{scope.name}.{scope.namespace}.slo", "rules": slo_alerts},
        {"name": f"{scope.name}.{scope.namespace}.pods", "rules": _pod_alerts(scope)},
    ]


def _pod_alerts(scope: Scope) -> list[dict[str, Any]]:
    where = f"{scope.name} in {scope.namespace}"
    return [
        {
            "alert": "WebappPodsRestarting",
            "expr": f"increase(kube_pod_container_status_restarts_total{scope.pods()}[15m]) > 2",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"A pod of {where} restarts over and over",
                "description": "{{ $labels.pod }} restarted {{ $value | humanize }} times in 15 minutes: "
                "liveness failing (a stalled worker) or the process exiting; see its previous logs.",
            },
        },
        {
            "alert": "WebappPodsNotReady",
            "expr": f"max by (namespace, pod) (kube_pod_container_status_ready{scope.pods()}) == 0",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"A pod of {where} has failed its readiness probe for 5 minutes",
                "description": "{{ $labels.pod }} gets no traffic: /ready answers 503 (draining, or workers "
                "crash-looping) or does not answer.",
            },
        },
        {
            "alert": "WebappLivenessProbesFailing",
            "expr": f"sum by (namespace, pod) (increase(prober_probe_total{scope.pods(*LIVENESS_FAILED)}[10m])) > 0",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"The kubelet's liveness probes of {where} fail",
                "description": "{{ $labels.pod }} failed {{ $value | humanize }} liveness probes in 10 minutes; "
                "three in a row restart it.",
            },
        },
        {
            "alert": "WebappWorkersStalled",
            "expr": f"max by (namespace, pod) ({scope.names.stalled_workers}{scope.app()}) > 0",
            "for": "1m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": f"Workers of {where} have every thread busy and finish nothing",
                "description": "{{ $labels.pod }} has {{ $value }} stalled workers: a dependency that hangs. "
                "Liveness restarts the pod after STALL_SECONDS.",
            },
        },
        {
            "alert": "WebappWorkersCrashing",
            "expr": f"sum by (namespace, pod) (increase({scope.names.worker_crashes}{scope.app()}[10m])) > 0",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"Workers of {where} die without being asked to",
                "description": "{{ $labels.pod }}: {{ $value | humanize }} worker crashes in 10 minutes "
                "(three in a minute fail readiness).",
            },
        },
        {
            "alert": "WebappMetricsDropped",
            "expr": f"sum by (namespace, pod) (increase({scope.names.dropped_samples}{scope.app()}[10m])) > 0",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"{where} cannot write its metric files",
                "description": "{{ $labels.pod }} dropped {{ $value | humanize }} request samples: its /tmp "
                "(a 64 MiB memory volume) is full.",
            },
        },
        {
            "alert": "WebappScrapeFailing",
            "expr": f"up{scope.app()} == 0",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"Prometheus cannot scrape {where}",
                "description": "{{ $labels.pod }}'s management port does not answer /metrics; "
                "its probes use the same port.",
            },
        },
    ]

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
    """A pair of windows (in seconds) whose error ratios must both exceed `factor` times the budget, and how urgent
    that is."""

    long_seconds: int
    short_seconds: int
    factor: float
    severity: str


BURN_RATES = (
    BurnRate(3600, 300, 14.4, "critical"),
    BurnRate(6 * 3600, 1800, 6.0, "critical"),
    BurnRate(86400, 2 * 3600, 3.0, "warning"),
)
RECORDING_INTERVAL_SECONDS = 30
"""How often the recorded ratios are evaluated (divided like the windows)."""
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration(seconds: int) -> str:
    """A whole number of seconds as a Prometheus duration in its largest exact unit (3600 -> 1h, 90 -> 90s)."""
    unit, size = next((unit, size) for unit, size in _UNITS if seconds % size == 0)
    return f"{seconds // size}{unit}"


@dataclass(frozen=True)
class Windows:
    """The burn rates' windows as Prometheus durations, each divided by the stack's `metrics.sloWindowDivisor`
    (1 everywhere but in tests, which scale an hour to a minute to see an alert fire)."""

    divisor: int = 1

    def of(self, seconds: int) -> str:
        """One window, divided."""
        return duration(max(1, seconds // self.divisor))

    def long(self, rate: BurnRate) -> str:
        return self.of(rate.long_seconds)

    def short(self, rate: BurnRate) -> str:
        return self.of(rate.short_seconds)

    def every(self) -> tuple[str, ...]:
        """Every window a burn rate reads, shortest first: one recording rule per window and objective."""
        seconds = sorted({s for rate in BURN_RATES for s in (rate.long_seconds, rate.short_seconds)})
        return tuple(self.of(s) for s in seconds)


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
    """The share of requests answered with a 5xx over `window`: 0, not absent, while requests come and none fail
    (a 5xx series exists only once one was answered), so dashboards show 0 and a real Prometheus records it."""
    requests = scope.names.requests
    total = f"sum by (namespace, job) (rate({requests}{scope.app()}[{window}]))"
    return f"(sum by (namespace, job) (rate({requests}{scope.app(SERVER_ERROR)}[{window}])) or 0 * {total}) / {total}"


def slow_ratio(scope: Scope, window: str, seconds: float) -> str:
    """The share of requests slower than `seconds` (a bucket bound of the app's histogram) over `window`."""
    bucket = 'le="' + app_metrics.bucket_label(seconds) + '"'
    return (
        f"1 - sum by (namespace, job) (rate({scope.names.duration_bucket}{scope.app(bucket)}[{window}]))"
        f" / sum by (namespace, job) (rate({scope.names.duration_count}{scope.app()}[{window}]))"
    )


def _burn_alert(
    name: str, recorded: str, *, scope: Scope, budget: float, rate: BurnRate, windows: Windows, what: str
) -> dict[str, Any]:
    threshold = f"({rate.factor:g} * {budget:g})"
    long_window, short_window = windows.long(rate), windows.short(rate)
    return {
        "alert": name,
        "expr": f"{recorded}{long_window}{scope.app()} > {threshold}"
        f" and {recorded}{short_window}{scope.app()} > {threshold}",
        "labels": {"severity": rate.severity, "burn_window": long_window},
        "annotations": {
            "summary": f"{scope.name} in {scope.namespace} is spending its {what} error budget "
            f"{rate.factor:g} times too fast",
            "description": f"Over the last {long_window} (and {short_window}) "
            "{{ $value | humanizePercentage }} of requests " + f"were {what} failures; at this pace the 30-day "
            "budget runs out early. See docs/runbook.md.",
        },
    }


def rule_groups(scope: Scope, metrics: MetricsSettings) -> list[dict[str, Any]]:
    """The PrometheusRule's `spec.groups`: the recorded ratios, the SLO alerts and the pod and worker alerts."""
    availability_budget, latency_budget = metrics.availability_budget, metrics.latency_budget
    seconds = metrics.latency_objective_seconds
    windows = Windows(metrics.slo_window_divisor)
    every = windows.every()
    recordings = [{"record": f"{FAILED_REQUEST}{window}", "expr": failed_ratio(scope, window)} for window in every] + [
        {"record": f"{SLOW_REQUEST}{window}", "expr": slow_ratio(scope, window, seconds)} for window in every
    ]
    slo_alerts = [
        _burn_alert(
            "WebappAvailabilityBudgetBurn",
            FAILED_REQUEST,
            scope=scope,
            budget=availability_budget,
            rate=rate,
            windows=windows,
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
            windows=windows,
            what=f"latency (> {seconds:g} s)",
        )
        for rate in BURN_RATES
    ]
    return [
        {
            "name": f"{scope.name}.{scope.namespace}.slo-ratios",
            "interval": windows.of(RECORDING_INTERVAL_SECONDS),
            "rules": recordings,
        },
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

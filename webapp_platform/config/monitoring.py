"""What the cluster's Prometheus and Grafana get: the scrape, the alerts with their objectives, and the dashboard."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from webapp_platform.config.app_metrics import LATENCY_BUCKETS
from webapp_platform.config.types import DnsLabel, LabelKey, LabelValue, PrometheusDuration, SettingsModel


class MetricsSettings(SettingsModel):
    """Prometheus scraping of the management port's /metrics, and the alerts and dashboard built on it."""

    service_monitor: bool = False
    """Create a monitoring.coreos.com/v1 ServiceMonitor (needs the Prometheus Operator's CRDs in the cluster)."""
    interval: PrometheusDuration = "30s"
    """How often Prometheus scrapes, as a Prometheus duration."""
    scrape_namespace: DnsLabel = "monitoring"
    """The namespace Prometheus runs in: the NetworkPolicy admits the management port from there only."""
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    """Extra labels on the ServiceMonitor and PrometheusRule: what the Prometheus selects them by
    (kube-prometheus-stack: `release: <its release>`)."""
    alerts: bool = False
    """Create a monitoring.coreos.com/v1 PrometheusRule: availability and latency against the objectives (burn rates),
    pods restarting, probes failing, workers stalled or crashing. Needs serviceMonitor (the alerts read its series)."""
    availability_objective: float = Field(default=99.9, ge=90, le=99.99)
    """Percent of requests that must not fail with a 5xx, over 30 days."""
    latency_objective_seconds: float = 0.5
    """A request slower than this counts against the latency objective: one of the app's histogram bounds."""
    latency_objective_percent: float = Field(default=99.0, ge=50, le=99.99)
    """Percent of requests that must be faster than latencyObjectiveSeconds, over 30 days."""
    slo_window_divisor: int = Field(default=1, ge=1, le=3600)
    """Divides the burn-rate windows (1h and 5m, 6h and 30m, 1d and 2h) and the ratios' 30 s evaluation interval:
    1 in every real stack; a test stack sets 60 so an hour's burn shows in a minute."""
    dashboard: bool = False
    """Create a ConfigMap holding a Grafana dashboard, labelled `grafana_dashboard: "1"` for Grafana's sidecar. Needs
    serviceMonitor (the panels read its series)."""

    @property
    def availability_budget(self) -> float:
        """The share of requests allowed to fail with a 5xx: what the alerts' burn rates and the canary's checks
        divide by."""
        return round(1 - self.availability_objective / 100, 6)

    @property
    def latency_budget(self) -> float:
        """The share of requests allowed to be slower than latencyObjectiveSeconds."""
        return round(1 - self.latency_objective_percent / 100, 6)

    @field_validator("latency_objective_seconds")
    @classmethod
    def _a_bucket_bound(cls, value: float) -> float:
        if value not in LATENCY_BUCKETS:
            bounds = ", ".join(f"{bound:g}" for bound in LATENCY_BUCKETS)
            raise ValueError(
                f"{value:g} is not a bound of the app's latency histogram, so no series counts it; use one of {bounds}"
            )
        return value

    @model_validator(mode="after")
    def _read_the_monitored_series(self) -> MetricsSettings:
        wanted = [key for key, on in (("alerts", self.alerts), ("dashboard", self.dashboard)) if on]
        if wanted and not self.service_monitor:
            raise ValueError(
                f"{' and '.join(wanted)} need serviceMonitor: true: their queries select the series by the labels "
                "the ServiceMonitor's scrape gives them (job: the Service's name, namespace)"
            )
        return self

"""What the cluster's Prometheus gets: the scrape, the alerts and the dashboard."""

from __future__ import annotations

from config.types import DnsLabel, PrometheusDuration, SettingsModel


class MetricsSettings(SettingsModel):
    """Prometheus scraping of the management port's /metrics."""

    service_monitor: bool = False
    """Create a monitoring.coreos.com/v1 ServiceMonitor (needs the Prometheus Operator's CRDs in the cluster)."""
    interval: PrometheusDuration = "30s"
    """How often Prometheus scrapes, as a Prometheus duration."""
    scrape_namespace: DnsLabel = "monitoring"
    """The namespace Prometheus runs in: the NetworkPolicy admits the management port from there only."""

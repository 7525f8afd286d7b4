"""WebMonitoring: the stack's alerts (a PrometheusRule) and its Grafana dashboard (a ConfigMap), when asked for."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from webapp_platform.components.alert_rules import Scope, rule_groups
from webapp_platform.components.dashboard import dashboard
from webapp_platform.config.monitoring import MetricsSettings

GRAFANA_DASHBOARD_LABEL = {"grafana_dashboard": "1"}
"""The label Grafana's dashboard sidecar (kube-prometheus-stack, the Grafana chart) loads ConfigMaps by."""


@dataclass(frozen=True)
class WebMonitoringArgs:
    """Inputs of `WebMonitoring`."""

    namespace: pulumi.Input[str]
    """Namespace of the PrometheusRule and the dashboard's ConfigMap."""
    scope: Scope
    """Which series are this stack's: its namespace's name and the Service's name (the scrape's job)."""
    stack: str
    """The stack's name: the dashboard's uid and title."""
    metrics: MetricsSettings
    """Whether to make each, the objectives, and the labels the Prometheus selects rules by."""
    labels: dict[str, str]
    """The service's recommended labels."""
    object_name: str
    """metadata.name of the PrometheusRule; the ConfigMap is `<object_name>-dashboard`."""


class WebMonitoring(pulumi.ComponentResource):
    """What the on-call engineer is paged by and looks at: SLO burn-rate and pod alerts, and a dashboard."""

    def __init__(self, name: str, args: WebMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("webapp:index:WebMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.metrics.alerts:
            k8s.apiextensions.CustomResource(
                f"{name}-rules",
                api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=args.object_name,
                    namespace=args.namespace,
                    labels={**args.labels, **args.metrics.labels},
                ),
                spec={"groups": rule_groups(args.scope, args.metrics)},
                opts=child,
            )
        if args.metrics.dashboard:
            model = dashboard(args.scope, args.stack, args.metrics)
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"{args.object_name}-dashboard",
                    namespace=args.namespace,
                    labels={**args.labels, **GRAFANA_DASHBOARD_LABEL},
                ),
                data={f"{model['uid']}.json": json.dumps(model, indent=2, sort_keys=True)},
                opts=child,
            )
        self.register_outputs({})

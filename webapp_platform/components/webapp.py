"""WebApp: one service composed from validated settings: its config, workload, routing and monitoring."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from webapp_platform.components.alert_rules import Scope
from webapp_platform.components.app_config import AppConfig, AppConfigArgs
from webapp_platform.components.awaits import rollout_await
from webapp_platform.components.backend import Backend
from webapp_platform.components.canary import WebCanary, WebCanaryArgs
from webapp_platform.components.labels import standard_labels
from webapp_platform.components.web_ingress import WebIngress, WebIngressArgs
from webapp_platform.components.web_monitoring import WebMonitoring, WebMonitoringArgs
from webapp_platform.components.web_route import CanaryBackend, WebRoute, WebRouteArgs
from webapp_platform.components.web_service import WebService, WebServiceArgs
from webapp_platform.config.app_metrics import BUNDLED, MetricNames
from webapp_platform.config.loading import LoadedStack

PART_OF = "webapp"
"""The app.kubernetes.io/part-of label of every object."""
COMPONENT = "web"
"""The app.kubernetes.io/component label of every object."""


@dataclass(frozen=True)
class WebAppArgs:
    """Inputs of `WebApp`."""

    stack: LoadedStack
    """The stack: its name, validated settings and secrets."""
    namespace: pulumi.Input[str]
    """Namespace every object goes into."""


class WebApp(pulumi.ComponentResource):
    """One service, as one tree in `pulumi preview`: its config and workload, and (when enabled) its Ingress or
    HTTPRoute, its alerts and its dashboard."""

    config: AppConfig
    """The ConfigMap and Secret."""
    service: WebService
    """The Deployment, Service and what protects them."""
    ingress: WebIngress | None
    """The Ingress, when enabled."""
    route: WebRoute | None
    """The Gateway API HTTPRoute, when enabled (instead of the Ingress)."""
    monitoring: WebMonitoring | None
    """The PrometheusRule and the Grafana dashboard, when either is enabled."""
    canary: WebCanary | None
    """The canary release in progress (the stack's `canaryRelease`), beside the stable service."""
    url: pulumi.Output[str]
    """The public URL when there is an Ingress or an HTTPRoute, else the in-cluster one."""

    def __init__(self, name: str, args: WebAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("webapp:index:WebApp", name, None, opts)
        values, namespace = args.stack.settings, args.namespace
        # AppConfig, WebService and WebIngress were top-level before WebApp existed. The alias names their old
        # parent (the stack), so stacks deployed then keep every URN below them: nothing is replaced. The
        # components added since have no older parent to name.
        aliased = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
        newer = pulumi.ResourceOptions(parent=self)
        labels = standard_labels(name, f"{name}-{args.stack.name}", COMPONENT, PART_OF)

        self.config = AppConfig(name, _config_args(args, labels), opts=aliased)
        service_args = _service_args(args, labels, self.config)
        self.service = WebService(name, service_args, opts=aliased)
        release = values.canary_release
        self.canary = (
            WebCanary(
                f"{name}-canary",
                WebCanaryArgs(service_args, release, by_route=values.canary_weighted_by_route),
                opts=newer,
            )
            if release is not None
            else None
        )
        backend = Backend(namespace, self.service.service_name, values.service.port, values.name, labels)
        # The provider awaits the Ingress's address or the route's acceptance as long as the Deployment's rollout.
        await_rollout = rollout_await(values.rollout_timeout_seconds)
        self.ingress = (
            WebIngress(name, WebIngressArgs(backend, values.ingress, base_annotations=await_rollout), opts=aliased)
            if values.ingress.enabled
            else None
        )
        self.route = (
            WebRoute(
                name,
                WebRouteArgs(
                    backend,
                    values.http_route,
                    base_annotations=await_rollout,
                    canary=CanaryBackend(self.canary.service_name, release.weight)
                    if self.canary is not None and release is not None
                    else None,
                ),
                # The canary's pods are Ready before the route sends them anything.
                opts=pulumi.ResourceOptions.merge(newer, pulumi.ResourceOptions(depends_on=[self.canary]))
                if self.canary is not None
                else newer,
            )
            if values.http_route.enabled
            else None
        )
        self.monitoring = (
            WebMonitoring(name, _monitoring_args(args, labels), opts=newer)
            if values.metrics.alerts or values.metrics.dashboard
            else None
        )
        public = self.ingress or self.route
        self.url = (
            public.url
            if public is not None
            else pulumi.Output.concat(
                "http://", self.service.service_name, ".", namespace, ".svc.cluster.local:", str(values.service.port)
            )
        )
        self.register_outputs({"url": self.url})


def _config_args(args: WebAppArgs, labels: dict[str, str]) -> AppConfigArgs:
    values = args.stack.settings
    return AppConfigArgs(
        namespace=args.namespace,
        labels=labels,
        data=values.app_config,
        secret_data=args.stack.secrets,
        existing_secret=values.existing_secret,
    )


def _service_args(args: WebAppArgs, labels: dict[str, str], config: AppConfig) -> WebServiceArgs:
    values = args.stack.settings
    return WebServiceArgs(
        namespace=args.namespace,
        image=values.image,
        labels=labels,
        object_name=values.name,
        replicas=values.replicas,
        resources=values.resources,
        service=values.service,
        timings=values.server_timings,
        autoscaling=values.autoscaling,
        max_unavailable=values.disruption_budget.max_unavailable,
        metrics=values.metrics,
        service_account=values.service_account,
        scheduling=values.scheduling,
        config_map_name=config.config_map_name,
        secret_name=config.secret_name,
        trusted_proxies=values.trusted_proxies,
        proxy_namespaces=tuple(values.proxy_namespaces),
        enable_test_routes=values.enable_test_routes,
        image_pull_secrets=tuple(values.image_pull_secrets),
        rollout_timeout_seconds=values.rollout_timeout_seconds,
        app=values.app,
    )


def _monitoring_args(args: WebAppArgs, labels: dict[str, str]) -> WebMonitoringArgs:
    stack = args.stack
    values = stack.settings
    return WebMonitoringArgs(
        namespace=args.namespace,
        # The series' namespace label is the namespace's name, known before it exists.
        scope=Scope(
            namespace=values.namespace_name(stack.name),
            name=values.name,
            names=MetricNames(values.app.metrics.prefix) if values.app.metrics else BUNDLED,
        ),
        stack=stack.name,
        metrics=values.metrics,
        labels=labels,
        object_name=values.name,
    )

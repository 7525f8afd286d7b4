"""WebApp: one service composed from validated settings: its config, workload and optional ingress."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.app_config import AppConfig, AppConfigArgs
from components.labels import standard_labels
from components.web_ingress import WebIngress, WebIngressArgs
from components.web_service import WebService, WebServiceArgs, rollout_await
from config.loading import Settings

PART_OF = "webapp"
"""The app.kubernetes.io/part-of label of every object."""
COMPONENT = "web"
"""The app.kubernetes.io/component label of every object."""


@dataclass(frozen=True)
class WebAppArgs:
    """Inputs of `WebApp`."""

    settings: Settings
    """The stack's validated settings."""
    namespace: pulumi.Input[str]
    """Namespace every object goes into."""


class WebApp(pulumi.ComponentResource):
    """One service, as one tree in `pulumi preview`: its config, its workload and (if enabled) its ingress."""

    config: AppConfig
    """The ConfigMap and Secret."""
    service: WebService
    """The Deployment, Service and what protects them."""
    ingress: WebIngress | None
    """The Ingress, when enabled."""
    url: pulumi.Output[str]
    """The public URL when there is an ingress, else the in-cluster one."""

    def __init__(self, name: str, args: WebAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("webapp:index:WebApp", name, None, opts)
        settings, namespace = args.settings, args.namespace
        values = settings.values
        # AppConfig, WebService and WebIngress were top-level before WebApp existed. The alias names their old
        # parent (the stack), so stacks deployed then keep every URN below them: nothing is replaced.
        child = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
        instance = f"{name}-{settings.stack}"
        labels = standard_labels(name, instance, COMPONENT, PART_OF)
        self.config = AppConfig(
            name,
            AppConfigArgs(
                namespace=namespace,
                labels=labels,
                data=values.app_config,
                secret_data=settings.secrets,
                existing_secret=values.existing_secret,
            ),
            opts=child,
        )
        self.service = WebService(
            name,
            WebServiceArgs(
                namespace=namespace,
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
                config_map_name=self.config.config_map_name,
                secret_name=self.config.secret_name,
                trusted_proxies=values.trusted_proxies,
                enable_test_routes=values.enable_test_routes,
                image_pull_secrets=tuple(values.image_pull_secrets),
                rollout_timeout_seconds=values.rollout_timeout_seconds,
            ),
            opts=child,
        )
        self.ingress = None
        if values.ingress.enabled and values.ingress.host:
            self.ingress = WebIngress(
                name,
                WebIngressArgs(
                    namespace=namespace,
                    host=values.ingress.host,
                    path=values.ingress.path,
                    class_name=values.ingress.class_name,
                    tls_secret_name=values.ingress.tls_secret_name,
                    # The provider awaits the Ingress's address (and its backends) like the Deployment; the stack's
                    # own annotations win.
                    annotations={**rollout_await(values.rollout_timeout_seconds), **values.ingress.annotations},
                    service_name=self.service.service_name,
                    service_port=values.service.port,
                    labels=labels,
                    object_name=values.name,
                ),
                opts=child,
            )
        if self.ingress is not None:
            self.url = self.ingress.url
        else:
            self.url = pulumi.Output.concat(
                "http://",
                self.service.service_name,
                ".",
                namespace,
                ".svc.cluster.local:",
                str(values.service.port),
            )
        self.register_outputs({"url": self.url})

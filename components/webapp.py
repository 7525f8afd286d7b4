"""Compose one service from validated settings: its config, workload and optional ingress."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.app_config import AppConfig, AppConfigArgs
from components.labels import standard_labels
from components.settings import Settings
from components.web_ingress import WebIngress, WebIngressArgs
from components.web_service import WebService, WebServiceArgs


@dataclass(frozen=True)
class DeployedService:
    """The components that make up one deployed service, and where to reach it."""

    config: AppConfig
    service: WebService
    ingress: WebIngress | None
    url: pulumi.Output[str]
    """The public URL when there is an ingress, else the in-cluster one."""


def deploy_service(
    name: str, settings: Settings, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None
) -> DeployedService:
    """Create the AppConfig, WebService and (if enabled) WebIngress for service `name`."""
    values = settings.values
    instance = f"{name}-{settings.stack}"
    labels = standard_labels(name, instance, "web", "webapp")
    config = AppConfig(
        name,
        AppConfigArgs(
            namespace=namespace,
            labels=labels,
            data=values.app_config,
            secret_data=settings.secrets,
            existing_secret=values.existing_secret,
        ),
        opts=opts,
    )
    service = WebService(
        name,
        WebServiceArgs(
            namespace=namespace,
            image=values.image.reference,
            version=values.image.tag,
            instance=instance,
            resources=values.resources,
            object_name=values.name,
            replicas=values.replicas,
            service_port=values.service.port,
            service_type=values.service.type,
            config_map_name=config.config_map_name,
            secret_name=config.secret_name,
            drain_seconds=values.drain_seconds,
            graceful_timeout_seconds=values.graceful_timeout_seconds,
            autoscaling=values.autoscaling,
            max_unavailable=values.disruption_budget.max_unavailable,
        ),
        opts=opts,
    )
    ingress = None
    if values.ingress.enabled and values.ingress.host:
        ingress = WebIngress(
            name,
            WebIngressArgs(
                namespace=namespace,
                host=values.ingress.host,
                path=values.ingress.path,
                class_name=values.ingress.class_name,
                tls_secret_name=values.ingress.tls_secret_name,
                annotations=dict(values.ingress.annotations),
                service_name=service.service_name,
                service_port=service.service_port,
                labels=labels,
                object_name=values.name,
            ),
            opts=opts,
        )
    if ingress is not None:
        url = ingress.url
    else:
        url = pulumi.Output.concat(
            "http://", service.service_name, ".", namespace, ".svc.cluster.local:", str(service.service_port)
        )
    return DeployedService(config=config, service=service, ingress=ingress, url=url)

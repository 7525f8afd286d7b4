"""WebCanary: a release in progress beside the stable version: its own Deployment, Service and immutable ConfigMap.

The stable objects are never touched by a canary: its pods carry labels the stable Deployment's selector does not
match (`track: canary`), and its config is a ConfigMap of its own, so whatever the release does, the stable pods
keep their image, their configuration and their uptime. How requests reach it:

- through an HTTPRoute, by the route's backendRefs weights (exact): its pods are their own instance, which the
  stable Service does not select, and the route sends `weight` percent to the canary's Service;
- through an Ingress (or the Service alone), by the share of ready pods: its pods also carry the stable selector's
  labels, so the stable Service balances over both, as Kubernetes' own canary pattern does (an Ingress has one
  backend per path, and weighted Ingresses are each controller's own annotations). Its replica count is chosen so
  the pods' share comes closest to the weight (`effective_weight` says what it is).

The canary's ServiceMonitor (when the stack has one) gives its series `job="<name>-canary"`: the analysis reads
those alone. `tools/canary.py` drives a release through it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from webapp_platform.components.labels import TRACK_LABEL
from webapp_platform.components.web_service import WebService, WebServiceArgs
from webapp_platform.config.canary import CanaryRelease
from webapp_platform.config.settings import AutoscalingSettings

CANARY_SUFFIX = "-canary"
"""What a canary's objects (and its series' job) are called: the stable object's name plus this."""


def canary_name(name: str) -> str:
    """The canary's object name for a stable object named `name`: its Deployment, Service and series' job."""
    return f"{name}{CANARY_SUFFIX}"


def canary_labels(labels: dict[str, str], *, by_route: bool) -> dict[str, str]:
    """The canary's labels: the stable ones and `track: canary`; through a route, its own instance too, so the
    stable Service leaves its pods alone."""
    instance = "app.kubernetes.io/instance"
    own = {instance: canary_name(labels[instance])} if by_route else {}
    return {**labels, **own, TRACK_LABEL: "canary"}


def canary_replicas(stable: int, weight: int, *, by_route: bool) -> int:
    """Pods the canary runs beside `stable` stable pods at `weight` percent: enough for its share of the requests
    through a route; through the Service, the count whose share of all ready pods comes closest to the weight."""
    if by_route:
        return max(1, math.ceil(stable * weight / 100))
    return max(1, round(stable * weight / (100 - weight)))


def effective_weight(stable: int, weight: int, *, by_route: bool) -> float:
    """The percent of requests the canary gets: the weight through a route, its share of the pods otherwise."""
    if by_route:
        return float(weight)
    canary = canary_replicas(stable, weight, by_route=False)
    return 100 * canary / (stable + canary)


@dataclass(frozen=True)
class WebCanaryArgs:
    """Inputs of `WebCanary`."""

    stable: WebServiceArgs
    """The stable service's arguments: the canary runs the same but for its image, config, labels and pod count."""
    release: CanaryRelease
    """The release: image, plain config, weight."""
    by_route: bool
    """Whether an HTTPRoute splits the traffic by weight (else the stable Service does, by the pods' share)."""


class WebCanary(pulumi.ComponentResource):
    """The release in progress: an immutable ConfigMap and a WebService of its own beside the stable one."""

    service_name: pulumi.Output[str]
    """The canary's Service, which an HTTPRoute sends its weight to."""
    replicas: int
    """Pods the canary runs."""
    weight: float
    """Percent of the requests it gets (its pods' share when no route weighs them)."""

    def __init__(self, name: str, args: WebCanaryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("webapp:index:WebCanary", name, None, opts)
        stable, release = args.stable, args.release
        labels = canary_labels(stable.labels, by_route=args.by_route)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-cm",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=stable.namespace, labels=labels),
            data=dict(release.app_config),
            immutable=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.replicas = canary_replicas(stable.initial_replicas, release.weight, by_route=args.by_route)
        self.weight = effective_weight(stable.initial_replicas, release.weight, by_route=args.by_route)
        service = WebService(
            name,
            dataclasses.replace(
                stable,
                image=release.image,
                labels=labels,
                object_name=canary_name(stable.object_name),
                replicas=self.replicas,
                autoscaling=AutoscalingSettings(),
                # Among the stable Service's pods, the stable budget selects its pods already.
                own_disruption_budget=args.by_route,
                config_map_name=config_map.metadata.name,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.service_name = service.service_name
        self.register_outputs({"service_name": self.service_name})

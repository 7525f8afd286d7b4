"""WebRoute: a Gateway API HTTPRoute that attaches the Service to a Gateway the platform team runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from webapp_platform.components.backend import Backend
from webapp_platform.config.routing import HttpRouteSettings

GATEWAY_API_GROUP = "gateway.networking.k8s.io"
"""The Gateway API's group: HTTPRoute's API version is <group>/v1, and its parentRefs name a Gateway of it."""
ACCEPTED = {
    "pulumi.com/waitFor": json.dumps(
        [
            f'jsonpath={{.status.parents[0].conditions[?(@.type=="{condition}")].status}}=True'
            for condition in ("Accepted", "ResolvedRefs")
        ]
    )
}
"""The provider's await for a route: the Gateway's controller has accepted it and resolved its Service. Without it
`pulumi up` would succeed with a route the Gateway refuses (a listener that does not admit the namespace)."""


@dataclass(frozen=True)
class CanaryBackend:
    """A canary's Service and the percent of the requests it gets; the stable Service gets the rest."""

    service_name: pulumi.Input[str]
    weight: int


@dataclass(frozen=True)
class WebRouteArgs:
    """Inputs of `WebRoute`."""

    backend: Backend
    """The Service to route to, and the HTTPRoute's name, namespace and labels."""
    route: HttpRouteSettings
    """The Gateway, hostnames, path prefix and the listener's scheme."""
    base_annotations: dict[str, str] = field(default_factory=dict)
    """Annotations the program sets (the provider's await timeout); the await for acceptance and then the
    settings' own annotations win over them."""
    canary: CanaryBackend | None = None
    """A canary release's Service and its weight: the route splits the requests between it and the stable one."""


class WebRoute(pulumi.ComponentResource):
    """External HTTP(S) routing through a shared Gateway: the app owns its route, the platform team the Gateway."""

    url: pulumi.Output[str]
    """Public URL of the service: the first hostname, with the Gateway listener's scheme."""

    def __init__(self, name: str, args: WebRouteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("webapp:index:WebRoute", name, None, opts)
        route = args.route
        if route.gateway is None or not route.hostnames:
            raise ValueError(f"WebRoute {name!r}: a gateway and at least one hostname are required")
        parent: dict[str, str] = {"group": GATEWAY_API_GROUP, "kind": "Gateway", "name": route.gateway.name}
        if route.gateway.namespace:
            parent["namespace"] = route.gateway.namespace
        if route.gateway.section_name:
            parent["sectionName"] = route.gateway.section_name
        k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version=f"{GATEWAY_API_GROUP}/v1",
            kind="HTTPRoute",
            metadata=args.backend.metadata({**args.base_annotations, **ACCEPTED, **route.annotations}),
            spec={
                "parentRefs": [parent],
                "hostnames": list(route.hostnames),
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
                        "backendRefs": _backend_refs(args),
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = pulumi.Output.from_input(f"{route.scheme}://{route.hostnames[0]}{route.path}")
        self.register_outputs({"url": self.url})


def _backend_refs(args: WebRouteArgs) -> list[dict[str, pulumi.Input[str | int]]]:
    """The stable Service alone, or the stable and the canary Services weighted (percent)."""
    stable: dict[str, pulumi.Input[str | int]] = {"name": args.backend.service_name, "port": args.backend.service_port}
    if args.canary is None:
        return [stable]
    canary: dict[str, pulumi.Input[str | int]] = {
        "name": args.canary.service_name,
        "port": args.backend.service_port,
        "weight": args.canary.weight,
    }
    return [{**stable, "weight": 100 - args.canary.weight}, canary]

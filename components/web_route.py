"""WebRoute: a Gateway API HTTPRoute that attaches the Service to a Gateway the platform team runs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.backend import Backend
from config.routing import HttpRouteSettings

GATEWAY_API_GROUP = "gateway.networking.k8s.io"
"""The Gateway API's group: HTTPRoute's API version is <group>/v1, and its parentRefs name a Gateway of it."""


@dataclass(frozen=True)
class WebRouteArgs:
    """Inputs of `WebRoute`."""

    backend: Backend
    """The Service to route to, and the HTTPRoute's name, namespace and labels."""
    route: HttpRouteSettings
    """The Gateway, hostnames, path prefix and the listener's scheme."""


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
            metadata=args.backend.metadata(),
            spec={
                "parentRefs": [parent],
                "hostnames": list(route.hostnames),
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
                        "backendRefs": [{"name": args.backend.service_name, "port": args.backend.service_port}],
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = pulumi.Output.from_input(f"{route.scheme}://{route.hostnames[0]}{route.path}")
        self.register_outputs({"url": self.url})

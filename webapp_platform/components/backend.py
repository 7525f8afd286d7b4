"""Backend: what an Ingress or an HTTPRoute sends requests to, and the name and labels the routing object takes."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class Backend:
    """The Service requests go to, and what the object routing to it is called: shared by WebIngress and WebRoute."""

    namespace: pulumi.Input[str]
    """Namespace of the Service and of the routing object."""
    service_name: pulumi.Input[str]
    """Service to route to."""
    service_port: int
    """Port of that Service."""
    object_name: str
    """metadata.name of the routing object."""
    labels: dict[str, str]
    """Labels on the routing object."""

    def metadata(self, annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
        """The routing object's metadata: its name, namespace, labels and any annotations."""
        return k8s.meta.v1.ObjectMetaArgs(
            name=self.object_name, namespace=self.namespace, labels=self.labels, annotations=annotations or None
        )

"""WebIngress: a networking.k8s.io/v1 Ingress routing one or more hosts and a path prefix to a Service."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from webapp_platform.components.backend import Backend
from webapp_platform.config.routing import IngressSettings


@dataclass(frozen=True)
class WebIngressArgs:
    """Inputs of `WebIngress`."""

    backend: Backend
    """The Service to route to, and the Ingress's name, namespace and labels."""
    ingress: IngressSettings
    """Hosts, path prefix, class, TLS entries and annotations."""
    base_annotations: dict[str, str] = field(default_factory=dict)
    """Annotations the program sets (the provider's await); the settings' own annotations win over them."""


class WebIngress(pulumi.ComponentResource):
    """External HTTP(S) routing for one or more hosts and a path prefix."""

    url: pulumi.Output[str]
    """Public URL of the service: its first host, https when a TLS entry serves it."""

    def __init__(self, name: str, args: WebIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("webapp:index:WebIngress", name, None, opts)
        ingress = args.ingress
        if not ingress.hosts:
            raise ValueError(f"WebIngress {name!r}: hosts is empty; it needs at least one")
        backend = k8s.networking.v1.IngressBackendArgs(
            service=k8s.networking.v1.IngressServiceBackendArgs(
                name=args.backend.service_name,
                port=k8s.networking.v1.ServiceBackendPortArgs(number=args.backend.service_port),
            )
        )
        paths = k8s.networking.v1.HTTPIngressRuleValueArgs(
            paths=[k8s.networking.v1.HTTPIngressPathArgs(path=ingress.path, path_type="Prefix", backend=backend)]
        )
        k8s.networking.v1.Ingress(
            f"{name}-ing",
            metadata=args.backend.metadata({**args.base_annotations, **ingress.annotations}),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=ingress.class_name,
                tls=[
                    k8s.networking.v1.IngressTLSArgs(hosts=list(entry.hosts), secret_name=entry.secret_name)
                    for entry in ingress.tls
                ]
                or None,
                rules=[k8s.networking.v1.IngressRuleArgs(host=host, http=paths) for host in ingress.hosts],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        first = ingress.hosts[0]
        scheme = "https" if ingress.secure(first) else "http"
        self.url = pulumi.Output.from_input(f"{scheme}://{first}{ingress.path}")
        self.register_outputs({"url": self.url})

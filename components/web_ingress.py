"""WebIngress: a networking.k8s.io/v1 Ingress routing a host and path to a Service."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class WebIngressArgs:
    """Inputs of `WebIngress`."""

    namespace: pulumi.Input[str]
    """Namespace of the Ingress and the Service."""
    host: str
    """Host name the Ingress answers for."""
    service_name: pulumi.Input[str]
    """Service to route to."""
    service_port: int
    """Port of that Service."""
    labels: dict[str, str]
    """Labels on the Ingress."""
    object_name: str
    """metadata.name of the Ingress."""
    path: str = "/"
    """Path prefix routed to the Service."""
    class_name: str | None = None
    """IngressClass to use; the cluster default when None."""
    tls_secret_name: str | None = None
    """Secret holding the TLS certificate for `host`; plain HTTP when None."""
    annotations: dict[str, str] | None = None
    """Annotations for the ingress controller; none when None."""


class WebIngress(pulumi.ComponentResource):
    """External HTTP(S) routing for one host and path prefix."""

    url: pulumi.Output[str]
    """Public URL of the service."""

    def __init__(self, name: str, args: WebIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("webapp:index:WebIngress", name, None, opts)
        if not args.host:
            raise ValueError(f"WebIngress {name!r}: host is required")
        k8s.networking.v1.Ingress(
            f"{name}-ing",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.object_name,
                namespace=args.namespace,
                labels=args.labels,
                annotations=args.annotations or None,
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=args.class_name,
                tls=[k8s.networking.v1.IngressTLSArgs(hosts=[args.host], secret_name=args.tls_secret_name)]
                if args.tls_secret_name
                else None,
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=args.host,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                            paths=[
                                k8s.networking.v1.HTTPIngressPathArgs(
                                    path=args.path,
                                    path_type="Prefix",
                                    backend=k8s.networking.v1.IngressBackendArgs(
                                        service=k8s.networking.v1.IngressServiceBackendArgs(
                                            name=args.service_name,
                                            port=k8s.networking.v1.ServiceBackendPortArgs(number=args.service_port),
                                        )
                                    ),
                                )
                            ]
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        scheme = "https" if args.tls_secret_name else "http"
        self.url = pulumi.Output.from_input(f"{scheme}://{args.host}{args.path}")
        self.register_outputs({"url": self.url})

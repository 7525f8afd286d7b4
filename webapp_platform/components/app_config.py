"""AppConfig: the ConfigMap and Secret a service reads its environment from.

Both are auto-named by Pulumi (logical name plus a random suffix) and the
Kubernetes provider replaces them when their data changes, so a changed
value yields a new object with a new name; the Deployment's envFrom then
points at the new name, which changes its pod template and rolls the pods.
Without that, pods would keep the old values until something restarted them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from webapp_platform.config.rules import looks_secret


@dataclass(frozen=True)
class AppConfigArgs:
    """Inputs of `AppConfig`."""

    namespace: pulumi.Input[str]
    """Namespace both objects live in."""
    labels: Mapping[str, str]
    """Labels put on both objects."""
    data: Mapping[str, str] = field(default_factory=dict)
    """Plain settings for the ConfigMap; secret-looking names are refused."""
    secret_data: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Secret settings for the Secret; each value is kept a Pulumi secret."""
    existing_secret: str | None = None
    """A Secret managed outside Pulumi to read instead; then no Secret is created and secret_data must be empty."""


class AppConfig(pulumi.ComponentResource):
    """A service's environment: a ConfigMap of plain values and a Secret of secret ones."""

    config_map_name: pulumi.Output[str]
    """Generated name of the ConfigMap."""
    secret_name: pulumi.Output[str]
    """Generated name of the Secret, or the existing Secret's name."""

    def __init__(self, name: str, args: AppConfigArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("webapp:index:AppConfig", name, None, opts)
        leaked = sorted(key for key in args.data if looks_secret(key))
        if leaked:
            raise ValueError(
                f"AppConfig {name!r}: {leaked} look like secrets and must go in secret_data, not the ConfigMap"
            )
        if args.existing_secret and args.secret_data:
            raise ValueError(
                f"AppConfig {name!r}: secret_data {sorted(args.secret_data)} and existing_secret "
                f"{args.existing_secret!r} are both set; use one"
            )
        child = pulumi.ResourceOptions(parent=self)
        metadata = k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=dict(args.labels))

        # Immutable: replaced on every change (a new name rolls the pods), never edited in place by hand,
        # and the API server stops watching them for kubelets.
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-cm", metadata=metadata, data=dict(args.data), immutable=True, opts=child
        )
        self.config_map_name = config_map.metadata.name
        if args.existing_secret:
            self.secret_name = pulumi.Output.from_input(args.existing_secret)
        else:
            secret = k8s.core.v1.Secret(
                f"{name}-secret",
                metadata=metadata,
                type="Opaque",
                immutable=True,
                string_data={key: pulumi.Output.secret(value) for key, value in args.secret_data.items()},
                opts=child,
            )
            self.secret_name = secret.metadata.name
        self.register_outputs({"config_map_name": self.config_map_name, "secret_name": self.secret_name})

"""How requests reach the Service from outside: an Ingress, or a Gateway API HTTPRoute attached to a Gateway."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import Field, model_validator

from webapp_platform.config.types import (
    Annotations,
    DnsLabel,
    DnsSubdomain,
    HostName,
    SecretName,
    SettingsModel,
    UrlPath,
)

RENAMED_INGRESS_KEYS = {
    "host": "hosts, a list: hosts: [webapp.example.com]",
    "tlsSecretName": "tls, a list of certificates and their hosts: tls: [{secretName: webapp-tls, hosts: [...]}]",
}
"""Keys of the single-host Ingress that became lists, and what to write instead."""


def _repeated(values: list[str], what: str) -> None:
    twice = sorted(value for value, count in Counter(values).items() if count > 1)
    if twice:
        raise ValueError(f"{twice} appear more than once in {what}")


class IngressTls(SettingsModel):
    """One TLS entry of the Ingress: a certificate's Secret and the hosts it serves."""

    secret_name: SecretName
    """A `kubernetes.io/tls` Secret in the namespace (cert-manager's, or one the platform team provides)."""
    hosts: list[HostName] = Field(min_length=1)
    """Hosts of the Ingress this certificate covers."""


class IngressSettings(SettingsModel):
    """An optional networking.k8s.io/v1 Ingress in front of the Service: one or more hosts, each with TLS or not."""

    enabled: bool = False
    hosts: list[HostName] = Field(default_factory=list)
    """Host names the Ingress routes to the Service; the first is the stack's `url` output."""
    path: UrlPath = "/"
    class_name: DnsSubdomain | None = None
    tls: list[IngressTls] = Field(default_factory=list)
    """Certificates and the hosts they serve; a host in none is plain HTTP."""
    annotations: Annotations = Field(default_factory=dict)
    """Annotations for the ingress controller (or cert-manager, or the provider's pulumi.com/skipAwait)."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            renamed = [f"{old} became {new}" for old, new in RENAMED_INGRESS_KEYS.items() if old in data]
            if renamed:
                raise ValueError("; ".join(renamed))
        return data

    @model_validator(mode="after")
    def _hosts(self) -> IngressSettings:
        if self.enabled and not self.hosts:
            raise ValueError("an enabled ingress needs hosts, e.g. hosts: [webapp.example.com]")
        _repeated(self.hosts, "hosts")
        covered = [host for entry in self.tls for host in entry.hosts]
        _repeated(covered, "the tls entries' hosts (one certificate per host)")
        strangers = sorted(set(covered) - set(self.hosts))
        if strangers:
            raise ValueError(f"tls names {strangers}, which are not in hosts {self.hosts}; add them to hosts")
        return self

    def secure(self, host: str) -> bool:
        """Whether a TLS entry serves `host`."""
        return any(host in entry.hosts for entry in self.tls)


class GatewayReference(SettingsModel):
    """The Gateway an HTTPRoute attaches to: the platform team's, usually in a namespace of its own."""

    name: DnsSubdomain
    namespace: DnsLabel | None = None
    """The Gateway's namespace; the stack's own when left out. Its listener must allow routes from this namespace."""
    section_name: DnsSubdomain | None = None
    """One listener of the Gateway (e.g. `https`); every listener that accepts the route when left out."""


class HttpRouteSettings(SettingsModel):
    """An optional gateway.networking.k8s.io/v1 HTTPRoute, instead of an Ingress, attached to a named Gateway."""

    enabled: bool = False
    gateway: GatewayReference | None = None
    hostnames: list[HostName] = Field(default_factory=list)
    """Host names the route answers for; the first is the stack's `url` output."""
    path: UrlPath = "/"
    """Path prefix routed to the Service."""
    scheme: Literal["http", "https"] = "https"
    """What the Gateway's listener speaks (it terminates TLS, not the route): the scheme of the `url` output."""
    annotations: Annotations = Field(default_factory=dict)
    """Annotations for the Gateway's controller, or the provider's `pulumi.com/skipAwait` where no controller will
    ever accept the route."""

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> HttpRouteSettings:
        if self.enabled and self.gateway is None:
            raise ValueError("an enabled httpRoute needs a gateway, e.g. gateway: {name: public, namespace: gateway}")
        if self.enabled and not self.hostnames:
            raise ValueError("an enabled httpRoute needs hostnames, e.g. hostnames: [webapp.example.com]")
        _repeated(self.hostnames, "hostnames")
        return self

"""How requests reach the Service from outside: an Ingress, or a Gateway API HTTPRoute."""

from __future__ import annotations

from pydantic import Field, model_validator

from config.types import Annotations, DnsSubdomain, HostName, SecretName, SettingsModel, UrlPath


class IngressSettings(SettingsModel):
    """An optional networking.k8s.io/v1 Ingress in front of the Service."""

    enabled: bool = False
    host: HostName | None = None
    path: UrlPath = "/"
    class_name: DnsSubdomain | None = None
    tls_secret_name: SecretName | None = None
    annotations: Annotations = Field(default_factory=dict)
    """Annotations for the ingress controller (or cert-manager, or the provider's pulumi.com/skipAwait)."""

    @model_validator(mode="after")
    def _host_when_enabled(self) -> IngressSettings:
        if self.enabled and not self.host:
            raise ValueError("an enabled ingress needs a host, e.g. host: webapp.example.com")
        return self

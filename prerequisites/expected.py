"""What a stack's settings expect the cluster to have before its first `pulumi up`, and how to provide each.

Derived from the settings alone (no cluster): the Gateway API's CRDs and the Gateway an HTTPRoute attaches to, the
IngressClass an Ingress names, the TLS Secrets its `tls` entries name (unless cert-manager is asked to write them),
the Prometheus Operator's CRDs for a ServiceMonitor or PrometheusRule, and the namespace when the stack does not
create it. Each names the setting that asks for it and the API path that tells whether it is there.
"""

from __future__ import annotations

from dataclasses import dataclass

from webapp_platform.config.app_config import PROJECT
from webapp_platform.config.settings import StackSettings

GATEWAY_API = "the Gateway API's standard CRDs (https://gateway-api.sigs.k8s.io/guides/#installing-gateway-api)"
PROMETHEUS_OPERATOR = "the Prometheus Operator's CRDs (kube-prometheus-stack installs them)"
CERT_MANAGER_ANNOTATIONS = ("cert-manager.io/cluster-issuer", "cert-manager.io/issuer")
"""An Ingress with one of these has its TLS Secrets written by cert-manager after it exists: not a prerequisite."""


@dataclass(frozen=True)
class Prerequisite:
    """One object the cluster must hold: what it is, the API path that finds it, the setting that needs it, and
    what to do when it is missing."""

    what: str
    path: str
    setting: str
    how: str

    def describe(self) -> str:
        """One line: what is missing, for which setting, and how to provide it."""
        return f"{self.what} (needed by {self.setting}): {self.how}"


def _crd(name: str, setting: str, bundle: str) -> Prerequisite:
    return Prerequisite(
        what=f"CustomResourceDefinition {name}",
        path=f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
        setting=setting,
        how=f"install {bundle}",
    )


def _route(values: StackSettings, namespace: str) -> list[Prerequisite]:
    route = values.http_route
    if not route.enabled or route.gateway is None:
        return []
    setting = f"{PROJECT}:httpRoute"
    gateway_namespace = route.gateway.namespace or namespace
    return [
        _crd("gateways.gateway.networking.k8s.io", setting, GATEWAY_API),
        _crd("httproutes.gateway.networking.k8s.io", setting, GATEWAY_API),
        Prerequisite(
            what=f"Gateway {gateway_namespace}/{route.gateway.name}",
            path=f"/apis/gateway.networking.k8s.io/v1/namespaces/{gateway_namespace}/gateways/{route.gateway.name}",
            setting=f"{setting}.gateway",
            how="ask the platform team for it (a Gateway whose listeners admit routes from this namespace), "
            "or name an existing one in httpRoute.gateway",
        ),
    ]


def _ingress(values: StackSettings, namespace: str) -> list[Prerequisite]:
    ingress = values.ingress
    if not ingress.enabled:
        return []
    found = []
    if ingress.class_name:
        found.append(
            Prerequisite(
                what=f"IngressClass {ingress.class_name}",
                path=f"/apis/networking.k8s.io/v1/ingressclasses/{ingress.class_name}",
                setting=f"{PROJECT}:ingress.className",
                how="install an ingress controller that implements it, or name an existing class "
                "(kubectl get ingressclasses)",
            )
        )
    # A namespace the stack creates cannot hold the Secret before the first `up`; cert-manager writes it later.
    if not values.create_namespace and not any(key in ingress.annotations for key in CERT_MANAGER_ANNOTATIONS):
        for index, entry in enumerate(ingress.tls):
            found.append(
                Prerequisite(
                    what=f"TLS Secret {namespace}/{entry.secret_name}",
                    path=f"/api/v1/namespaces/{namespace}/secrets/{entry.secret_name}",
                    setting=f"{PROJECT}:ingress.tls[{index}].secretName",
                    how=f"create it (kubectl create secret tls {entry.secret_name} -n {namespace} --cert=... "
                    "--key=...), or have cert-manager write it (a cert-manager.io/cluster-issuer annotation)",
                )
            )
    return found


def _monitoring(values: StackSettings) -> list[Prerequisite]:
    metrics = values.metrics
    found = []
    if metrics.service_monitor:
        found.append(
            _crd("servicemonitors.monitoring.coreos.com", f"{PROJECT}:metrics.serviceMonitor", PROMETHEUS_OPERATOR)
        )
    if metrics.alerts:
        found.append(_crd("prometheusrules.monitoring.coreos.com", f"{PROJECT}:metrics.alerts", PROMETHEUS_OPERATOR))
    return found


def expected(values: StackSettings, stack: str) -> list[Prerequisite]:
    """Everything `values` (stack `stack`) expects the cluster to hold already, in a stable order."""
    namespace = values.namespace_name(stack)
    found = []
    if not values.create_namespace:
        found.append(
            Prerequisite(
                what=f"Namespace {namespace}",
                path=f"/api/v1/namespaces/{namespace}",
                setting=f"{PROJECT}:createNamespace",
                how=f"create it (kubectl create namespace {namespace}), or let the stack create it "
                "(createNamespace: true)",
            )
        )
    return found + _route(values, namespace) + _ingress(values, namespace) + _monitoring(values)

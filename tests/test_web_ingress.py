"""WebIngress and WebRoute: hosts and a path prefix routed to the Service by name and port; TLS per host."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from tests.pulumi_helpers import only, run_components
from webapp_platform.components.backend import Backend
from webapp_platform.components.web_ingress import WebIngress, WebIngressArgs
from webapp_platform.components.web_route import WebRoute, WebRouteArgs
from webapp_platform.config.routing import HttpRouteSettings, IngressSettings

BACKEND = Backend(
    namespace="apps",
    service_name="shop-svc-1234",
    service_port=80,
    object_name="shop",
    labels={"app.kubernetes.io/name": "shop"},
)


def _ingress(seen: dict[str, Any], base_annotations: dict[str, str] | None = None, **settings: Any) -> Any:
    ingress = IngressSettings.model_validate(
        {"enabled": True, "hosts": ["shop.example.com"], "className": "nginx", **settings}
    )

    def build() -> pulumi.Output[Any]:
        component = WebIngress("shop", WebIngressArgs(BACKEND, ingress, base_annotations=base_annotations or {}))
        return component.url.apply(lambda url: seen.update(url=url))

    return run_components(build)


def _route(seen: dict[str, Any], base_annotations: dict[str, str] | None = None, **settings: Any) -> Any:
    route = HttpRouteSettings.model_validate(
        {"enabled": True, "gateway": {"name": "public"}, "hostnames": ["shop.example.com"], **settings}
    )

    def build() -> pulumi.Output[Any]:
        component = WebRoute("shop", WebRouteArgs(BACKEND, route, base_annotations=base_annotations or {}))
        return component.url.apply(lambda url: seen.update(url=url))

    return run_components(build)


def _paths(path: str) -> dict[str, Any]:
    backend = {"service": {"name": "shop-svc-1234", "port": {"number": 80.0}}}
    return {"paths": [{"path": path, "pathType": "Prefix", "backend": backend}]}


def test_routes_every_host_and_the_path_to_the_service() -> None:
    seen: dict[str, Any] = {}
    spec = only(_ingress(seen, hosts=["shop.example.com", "www.shop.example.com"], path="/api"), "Ingress").inputs[
        "spec"
    ]
    assert spec["ingressClassName"] == "nginx"
    assert spec["rules"] == [
        {"host": "shop.example.com", "http": _paths("/api")},
        {"host": "www.shop.example.com", "http": _paths("/api")},
    ]
    assert "tls" not in spec
    assert seen["url"] == "http://shop.example.com/api"


def test_one_tls_entry_per_certificate_and_the_url_follows_the_first_host() -> None:
    seen: dict[str, Any] = {}
    hosts = ["shop.example.com", "www.shop.example.com", "plain.example.com"]
    tls = [
        {"secretName": "shop-tls", "hosts": ["shop.example.com"]},
        {"secretName": "www-tls", "hosts": ["www.shop.example.com"]},
    ]
    spec = only(_ingress(seen, hosts=hosts, tls=tls), "Ingress").inputs["spec"]
    assert spec["tls"] == [
        {"hosts": ["shop.example.com"], "secretName": "shop-tls"},
        {"hosts": ["www.shop.example.com"], "secretName": "www-tls"},
    ]
    assert seen["url"] == "https://shop.example.com/"
    only(_ingress(seen, hosts=list(reversed(hosts)), tls=tls), "Ingress")
    assert seen["url"] == "http://plain.example.com/"


def test_annotations_reach_the_ingress_the_settings_win_and_none_means_none() -> None:
    base = {"pulumi.com/timeoutSeconds": "60", "example.com/both": "program"}
    own = {"cert-manager.io/cluster-issuer": "letsencrypt", "example.com/both": "stack"}
    annotated = only(_ingress({}, base_annotations=base, annotations=own), "Ingress").inputs
    assert annotated["metadata"]["annotations"] == {
        "pulumi.com/timeoutSeconds": "60",
        "cert-manager.io/cluster-issuer": "letsencrypt",
        "example.com/both": "stack",
    }
    plain = only(_ingress({}), "Ingress").inputs
    assert "annotations" not in plain["metadata"]


def test_the_ingress_has_the_stable_name() -> None:
    assert only(_ingress({}), "Ingress").inputs["metadata"]["name"] == "shop"


def test_the_route_attaches_to_the_named_gateway_and_listener() -> None:
    seen: dict[str, Any] = {}
    gateway = {"name": "shared", "namespace": "gateway", "sectionName": "http"}
    route = only(
        _route(seen, gateway=gateway, hostnames=["shop.example.com", "b.example.com"], path="/api"), "HTTPRoute"
    )
    assert route.inputs["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route.inputs["metadata"]["name"] == "shop"
    assert route.inputs["spec"] == {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "shared",
                "namespace": "gateway",
                "sectionName": "http",
            }
        ],
        "hostnames": ["shop.example.com", "b.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                "backendRefs": [{"name": "shop-svc-1234", "port": 80.0}],
            }
        ],
    }
    assert seen["url"] == "https://shop.example.com/api"


def test_a_route_to_a_gateway_of_its_own_namespace_names_none_and_says_its_scheme() -> None:
    seen: dict[str, Any] = {}
    route = only(_route(seen, scheme="http"), "HTTPRoute")
    assert route.inputs["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}
    ]
    assert seen["url"] == "http://shop.example.com/"


def test_up_waits_until_the_gateway_accepts_the_route_unless_the_stack_says_skip() -> None:
    base = {"pulumi.com/timeoutSeconds": "60"}
    annotations = only(_route({}, base_annotations=base), "HTTPRoute").inputs["metadata"]["annotations"]
    assert annotations["pulumi.com/timeoutSeconds"] == "60"
    assert json.loads(annotations["pulumi.com/waitFor"]) == [
        'jsonpath={.status.parents[0].conditions[?(@.type=="Accepted")].status}=True',
        'jsonpath={.status.parents[0].conditions[?(@.type=="ResolvedRefs")].status}=True',
    ]
    skipped = only(_route({}, annotations={"pulumi.com/skipAwait": "true"}), "HTTPRoute").inputs["metadata"]
    assert skipped["annotations"]["pulumi.com/skipAwait"] == "true"

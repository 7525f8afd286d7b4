"""WebIngress: host and path routed to the Service by name and port, class and optional TLS."""

from __future__ import annotations

from typing import Any

import pulumi

from components.web_ingress import WebIngress, WebIngressArgs
from tests.pulumi_helpers import only, run_components


def _build(seen: dict[str, Any], **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "namespace": "apps",
        "host": "shop.example.com",
        "service_name": "shop-svc-1234",
        "service_port": 80,
        "labels": {"app.kubernetes.io/name": "shop"},
        "object_name": "shop",
        "class_name": "nginx",
    }
    args.update(overrides)

    def build() -> pulumi.Output[Any]:
        ingress = WebIngress("shop", WebIngressArgs(**args))
        return ingress.url.apply(lambda url: seen.update(url=url))

    return run_components(build)


def test_routes_host_and_path_to_the_service() -> None:
    seen: dict[str, Any] = {}
    spec = only(_build(seen, path="/api"), "Ingress").inputs["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["rules"] == [
        {
            "host": "shop.example.com",
            "http": {
                "paths": [
                    {
                        "path": "/api",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "shop-svc-1234", "port": {"number": 80.0}}},
                    }
                ]
            },
        }
    ]
    assert "tls" not in spec
    assert seen["url"] == "http://shop.example.com/api"


def test_tls_when_a_certificate_secret_is_named() -> None:
    seen: dict[str, Any] = {}
    spec = only(_build(seen, tls_secret_name="shop-tls"), "Ingress").inputs["spec"]
    assert spec["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]
    assert seen["url"] == "https://shop.example.com/"


def test_annotations_reach_the_ingress_and_none_means_none() -> None:
    annotated = only(_build({}, annotations={"cert-manager.io/cluster-issuer": "letsencrypt"}), "Ingress").inputs
    assert annotated["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    plain = only(_build({}), "Ingress").inputs
    assert "annotations" not in plain["metadata"]


def test_the_ingress_has_the_stable_name() -> None:
    assert only(_build({}), "Ingress").inputs["metadata"]["name"] == "shop"

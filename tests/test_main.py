"""The program (__main__.py) under mocks: namespace handling, service exposure, exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.stack_values import valid_config
from tests.pulumi_helpers import kube, only, run_main
from tools.render import render_stack
from webapp_platform.config.errors import ConfigError


def test_creates_a_restricted_namespace_by_default() -> None:
    run = run_main(valid_config())
    namespace = only(run, "Namespace").inputs["metadata"]
    assert namespace["name"] == "webapp-test"
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert only(run, "Deployment").inputs["metadata"]["namespace"] == "webapp-test"


def test_deploys_into_an_existing_namespace_when_asked() -> None:
    run = run_main(valid_config(namespace="shared-apps", createNamespace=False))
    assert kube(run, "Namespace") == []
    assert {r.inputs["metadata"]["namespace"] for r in run.resources if r.is_kubernetes} == {"shared-apps"}


@pytest.mark.parametrize("service_type", ["ClusterIP", "NodePort", "LoadBalancer"])
def test_service_type_and_port_come_from_settings(service_type: str) -> None:
    run = run_main(valid_config(service={"type": service_type, "port": 8081}))
    spec = only(run, "Service").inputs["spec"]
    assert spec["type"] == service_type
    assert spec["ports"][0]["port"] == 8081


def test_without_ingress_the_url_is_the_in_cluster_one() -> None:
    run = run_main(valid_config())
    assert kube(run, "Ingress") == []
    service = only(run, "Service").object_name
    assert run.outputs["url"] == f"http://{service}.webapp-test.svc.cluster.local:80"


def test_exports_what_an_operator_needs() -> None:
    tls = [{"secretName": "shop-tls", "hosts": ["shop.example.com"]}]
    run = run_main(valid_config(ingress={"enabled": True, "hosts": ["shop.example.com"], "tls": tls}))
    assert run.outputs == {
        "namespace": "webapp-test",
        "deployment_name": only(run, "Deployment").object_name,
        "service_name": only(run, "Service").object_name,
        "url": "https://shop.example.com/",
        "image": "ghcr.io/example/webapp:1.4.2",
    }


def test_render_reports_a_bad_stack_file_by_key(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "Pulumi.yaml").write_text((root / "Pulumi.yaml").read_text())
    bad = (root / "Pulumi.dev.yaml").read_text().replace("tag: 1.4.2", "tag: latest")
    (tmp_path / "Pulumi.dev.yaml").write_text(bad)
    with pytest.raises(ConfigError, match=r"webapp:image\.tag: 'latest' cannot be tracked"):
        render_stack("dev", tmp_path)


def test_every_object_a_rollout_waits_on_gives_up_after_the_rollout_timeout() -> None:
    # On a create the provider waits for the Service's endpoints and the Ingress's address too: without the
    # same bound there, `pulumi up` of a new stack whose image cannot be pulled would wait 10 minutes.
    ingress = {"enabled": True, "hosts": ["a.example.com"], "annotations": {"example.com/keep": "yes"}}
    run = run_main(valid_config(rolloutTimeoutSeconds=45, ingress=ingress))
    for kind in ("Deployment", "Service", "Ingress"):
        assert only(run, kind).inputs["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == "45", kind
    assert only(run, "Ingress").inputs["metadata"]["annotations"]["example.com/keep"] == "yes"
    route = {"enabled": True, "gateway": {"name": "shared"}, "hostnames": ["a.example.com"]}
    routed = run_main(valid_config(rolloutTimeoutSeconds=45, httpRoute=route))
    assert only(routed, "HTTPRoute").inputs["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == "45"


def test_image_pull_secrets_reach_the_pod_spec() -> None:
    run = run_main(valid_config(imagePullSecrets=["registry-login"]))
    pod = only(run, "Deployment").inputs["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-login"}]

"""WebService: the Deployment's pod spec, and Service/PDB/HPA/NetworkPolicy wiring."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from tests.pulumi_helpers import container, kube, only, run_components
from tools.mocks import ProgramRun
from webapp_platform.components.labels import standard_labels
from webapp_platform.components.web_service import WebService, WebServiceArgs
from webapp_platform.config.image import ImageSettings
from webapp_platform.config.monitoring import MetricsSettings
from webapp_platform.config.rules import MANAGED_ENV
from webapp_platform.config.scheduling import SchedulingSettings
from webapp_platform.config.settings import (
    AutoscalingSettings,
    ResourceSettings,
    ServerTimings,
    ServiceAccountSettings,
    ServiceSettings,
)

RESOURCES = ResourceSettings.model_validate(
    {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
)
TIMINGS = ServerTimings(drain_seconds=5, graceful_timeout_seconds=20, keepalive_seconds=75, stall_seconds=30)
SELECTOR = {"app.kubernetes.io/name": "shop", "app.kubernetes.io/instance": "shop-test"}


def _args(**overrides: Any) -> WebServiceArgs:
    base: dict[str, Any] = {
        "namespace": "apps",
        "image": ImageSettings(repository="ghcr.io/example/shop", tag="2.3.4"),
        "labels": standard_labels("shop", "shop-test", "web", "webapp"),
        "resources": RESOURCES,
        "object_name": "shop",
        "config_map_name": "shop-cm-abc",
        "secret_name": "shop-secret-def",
        "replicas": 1,
        "service": ServiceSettings(type="ClusterIP", port=80),
        "timings": TIMINGS,
        "autoscaling": AutoscalingSettings(),
        "max_unavailable": 1,
        "metrics": MetricsSettings(),
    }
    base.update(overrides)
    return WebServiceArgs(**base)


def _build(**overrides: Any) -> ProgramRun:
    return run_components(lambda: WebService("shop", _args(**overrides)))


@pytest.fixture(scope="module")
def single() -> ProgramRun:
    """One replica, no autoscaling."""
    return _build()


@pytest.fixture(scope="module")
def scaled() -> ProgramRun:
    """Autoscaled from 3 to 9 replicas."""
    return _build(
        replicas=3,
        autoscaling=AutoscalingSettings(enabled=True, min_replicas=3, max_replicas=9, target_cpu_utilization=65),
    )


def test_component_type_token_and_children_parented() -> None:
    run = _build()
    components = [r for r in run.resources if not r.custom]
    assert [(r.type, r.name) for r in components] == [("webapp:index:WebService", "shop")]
    assert {r.name for r in run.resources if r.custom} == {"shop-sa", "shop-deploy", "shop-svc", "shop-netpol"}


def test_probes_hit_ready_and_healthz_on_the_management_port(single: ProgramRun) -> None:
    spec = container(only(single, "Deployment"))
    # The master answers there, never behind application requests (the traffic port would starve them).
    assert spec["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "management"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "management"}
    assert spec["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "management"}
    # The startup probe gives a slow start 60 s before liveness can kill the pod.
    assert spec["startupProbe"]["periodSeconds"] * spec["startupProbe"]["failureThreshold"] >= 60
    # Readiness must notice the 503 well inside the drain window.
    assert spec["readinessProbe"]["periodSeconds"] * spec["readinessProbe"]["failureThreshold"] <= 5 / 2


def test_container_port_resources_and_env(single: ProgramRun) -> None:
    spec = container(only(single, "Deployment"))
    assert spec["image"] == "ghcr.io/example/shop:2.3.4"
    assert spec["ports"] == [
        {"name": "http", "containerPort": 8080.0, "protocol": "TCP"},
        {"name": "management", "containerPort": 8081.0, "protocol": "TCP"},
    ]
    assert spec["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    env = {item["name"]: item["value"] for item in spec["env"]}
    assert env == {
        "APP_VERSION": "2.3.4",
        "PORT": "8080",
        "MANAGEMENT_PORT": "8081",
        "KEEPALIVE_SECONDS": "75",
        "STALL_SECONDS": "30",
        "DRAIN_SECONDS": "5",
        "GRACEFUL_TIMEOUT_SECONDS": "20",
        # Always set, so that no Secret's envFrom can: the test routes off, no proxies believed.
        "TRUSTED_PROXIES": "0",
        "ENABLE_TEST_ROUTES": "false",
    }
    assert spec["envFrom"] == [{"configMapRef": {"name": "shop-cm-abc"}}, {"secretRef": {"name": "shop-secret-def"}}]


def test_security_context_is_restricted(single: ProgramRun) -> None:
    deployment = only(single, "Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(deployment)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsUser"] == 10001
    # The read-only root needs a writable /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in container(deployment)["volumeMounts"]
    assert pod["volumes"][0]["name"] == "tmp"
    assert "emptyDir" in pod["volumes"][0]


def test_termination_grace_covers_drain_and_in_flight_requests() -> None:
    timings = ServerTimings(drain_seconds=7, graceful_timeout_seconds=30, keepalive_seconds=75, stall_seconds=30)
    run = _build(timings=timings)
    pod = only(run, "Deployment").inputs["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == timings.termination_grace_seconds() == 7 + 30 + 5
    env = {item["name"]: item["value"] for item in container(only(run, "Deployment"))["env"]}
    assert env["DRAIN_SECONDS"] == "7"
    assert env["GRACEFUL_TIMEOUT_SECONDS"] == "30"


def test_every_variable_the_deployment_sets_is_one_appconfig_may_not() -> None:
    # appConfig reaches the pod through envFrom, which the container's own env overrides: each name the component
    # sets must be in MANAGED_ENV, so the settings refuse it in appConfig instead of ignoring it.
    full = _build(trusted_proxies=1, enable_test_routes=True)
    names = {item["name"] for item in container(only(full, "Deployment"))["env"]}
    assert names == set(MANAGED_ENV)


def test_the_trusted_proxies_reach_the_app_as_set_and_zero_by_default(single: ProgramRun) -> None:
    assert {item["name"]: item["value"] for item in container(only(single, "Deployment"))["env"]}[
        "TRUSTED_PROXIES"
    ] == "0"
    env = {item["name"]: item["value"] for item in container(only(_build(trusted_proxies=1), "Deployment"))["env"]}
    assert env["TRUSTED_PROXIES"] == "1"


def test_the_test_routes_are_on_only_when_asked_for_by_name(single: ProgramRun) -> None:
    env = {item["name"]: item["value"] for item in container(only(single, "Deployment"))["env"]}
    assert env["ENABLE_TEST_ROUTES"] == "false"
    run = _build(enable_test_routes=True)
    env = {item["name"]: item["value"] for item in container(only(run, "Deployment"))["env"]}
    assert env["ENABLE_TEST_ROUTES"] == "true"


def test_rolling_update_never_drops_below_desired(single: ProgramRun) -> None:
    strategy = only(single, "Deployment").inputs["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] >= 1


def test_labels_are_the_recommended_set_and_selectors_are_stable(single: ProgramRun) -> None:
    deployment = only(single, "Deployment").inputs
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        **SELECTOR,
        "app.kubernetes.io/version": "2.3.4",
        "app.kubernetes.io/component": "web",
        "app.kubernetes.io/part-of": "webapp",
        "app.kubernetes.io/managed-by": "pulumi",
    }
    assert deployment["spec"]["selector"]["matchLabels"] == SELECTOR
    assert "app.kubernetes.io/version" not in deployment["spec"]["selector"]["matchLabels"]


def test_only_the_deployment_and_its_pods_carry_the_version(single: ProgramRun) -> None:
    # A new image tag must be a Deployment update only, not a relabelling of every object.
    versioned = {
        resource.kind
        for resource in single.resources
        if resource.is_kubernetes and "app.kubernetes.io/version" in resource.inputs["metadata"].get("labels", {})
    }
    assert versioned == {"Deployment"}
    others = [r for r in single.resources if r.is_kubernetes and r.kind != "Deployment"]
    assert others, "the component made no object besides the Deployment"
    for resource in others:
        assert resource.inputs["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pulumi", resource.kind


def test_service_selects_exactly_the_deployments_pods_and_targets_the_port_by_name(single: ProgramRun) -> None:
    service = only(single, "Service").inputs["spec"]
    pod_labels = only(single, "Deployment").inputs["spec"]["template"]["metadata"]["labels"]
    assert service["selector"] == SELECTOR
    assert all(pod_labels[key] == value for key, value in service["selector"].items())
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [{"name": "http", "port": 80.0, "targetPort": "http", "protocol": "TCP"}]


def test_network_policy_selects_the_pods_and_admits_two_ports(single: ProgramRun) -> None:
    policy = only(single, "NetworkPolicy").inputs["spec"]
    assert policy["podSelector"]["matchLabels"] == SELECTOR
    assert policy["policyTypes"] == ["Ingress"]
    assert [rule["ports"][0]["port"] for rule in policy["ingress"]] == ["http", "management"]


def test_the_traffic_port_admits_only_the_proxies_namespaces_when_named(single: ProgramRun) -> None:
    # The app believes the proxies' X-Forwarded-For: no one else may reach its traffic port.
    assert "from" not in only(single, "NetworkPolicy").inputs["spec"]["ingress"][0]
    run = _build(trusted_proxies=1, proxy_namespaces=("ingress-nginx", "gateways"))
    traffic = only(run, "NetworkPolicy").inputs["spec"]["ingress"][0]
    assert traffic["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateways"}}},
    ]


def test_single_replica_has_no_pdb_hpa_or_spread(single: ProgramRun) -> None:
    assert kube(single, "PodDisruptionBudget") == []
    assert kube(single, "HorizontalPodAutoscaler") == []
    assert only(single, "Deployment").inputs["spec"]["replicas"] == 1
    assert "topologySpreadConstraints" not in only(single, "Deployment").inputs["spec"]["template"]["spec"]


def test_several_replicas_get_a_pdb_and_spread_across_zones_and_nodes() -> None:
    run = _build(replicas=2)
    pdb = only(run, "PodDisruptionBudget").inputs["spec"]
    assert pdb["selector"]["matchLabels"] == SELECTOR
    assert pdb["maxUnavailable"] == 1
    spread = only(run, "Deployment").inputs["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [(s["topologyKey"], s["whenUnsatisfiable"]) for s in spread] == [
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
        ("kubernetes.io/hostname", "ScheduleAnyway"),
    ]
    assert all(s["labelSelector"]["matchLabels"] == SELECTOR and s["maxSkew"] == 1 for s in spread)
    required = _build(replicas=3, scheduling=SchedulingSettings(zone_spread="required"))
    zone = only(required, "Deployment").inputs["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert (zone["topologyKey"], zone["whenUnsatisfiable"]) == ("topology.kubernetes.io/zone", "DoNotSchedule")


def test_node_selector_and_tolerations_reach_the_pods(single: ProgramRun) -> None:
    assert "nodeSelector" not in only(single, "Deployment").inputs["spec"]["template"]["spec"]
    scheduling = SchedulingSettings.model_validate(
        {
            "nodeSelector": {"pool": "web"},
            "tolerations": [{"key": "dedicated", "value": "web", "effect": "NoSchedule"}],
        }
    )
    pod = only(_build(scheduling=scheduling), "Deployment").inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "web"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]


AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["web", "mixed"]}]}]
        },
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 20,
                "preference": {"matchExpressions": [{"key": "cpu-generation", "operator": "Gt", "values": ["5"]}]},
            }
        ],
    },
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 50,
                "podAffinityTerm": {
                    "labelSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
                    "topologyKey": "kubernetes.io/hostname",
                    "namespaces": ["batch"],
                },
            }
        ]
    },
}


def test_affinity_reaches_the_pods_as_the_api_spells_it(single: ProgramRun) -> None:
    assert "affinity" not in only(single, "Deployment").inputs["spec"]["template"]["spec"]
    scheduling = SchedulingSettings.model_validate({"affinity": AFFINITY})
    pod = only(_build(scheduling=scheduling), "Deployment").inputs["spec"]["template"]["spec"]
    assert pod["affinity"] == AFFINITY


def test_autoscaling_from_one_pod_still_gets_a_pdb_and_spread() -> None:
    run = _build(autoscaling=AutoscalingSettings(enabled=True, min_replicas=1, max_replicas=4))
    assert only(run, "Deployment").inputs["spec"]["replicas"] == 1
    assert only(run, "PodDisruptionBudget").inputs["spec"]["selector"]["matchLabels"] == SELECTOR
    assert "topologySpreadConstraints" in only(run, "Deployment").inputs["spec"]["template"]["spec"]


def test_autoscaler_targets_the_deployment(scaled: ProgramRun) -> None:
    hpa = only(scaled, "HorizontalPodAutoscaler").inputs
    deployment = only(scaled, "Deployment")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment.object_name,
    }
    assert hpa["spec"]["minReplicas"] == 3
    assert hpa["spec"]["maxReplicas"] == 9
    metric = hpa["spec"]["metrics"][0]["resource"]
    assert metric == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65.0}}
    assert deployment.inputs["spec"]["replicas"] == 3
    assert only(scaled, "PodDisruptionBudget").inputs["spec"]["selector"]["matchLabels"] == SELECTOR
    # Kubernetes' defaults, stated: five minutes of low load before removing pods, then half of them a minute.
    assert hpa["spec"]["behavior"] == {
        "scaleDown": {
            "stabilizationWindowSeconds": 300,
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
        },
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}]},
    }


def test_the_autoscaler_also_scales_on_memory_when_asked_at_the_pace_asked() -> None:
    scaling = AutoscalingSettings(
        enabled=True,
        min_replicas=2,
        max_replicas=6,
        target_memory_utilization=80,
        scale_down_stabilization_seconds=600,
        scale_down_max_percent_per_minute=20,
        scale_up_max_pods_per_minute=2,
    )
    spec = only(_build(autoscaling=scaling), "HorizontalPodAutoscaler").inputs["spec"]
    assert [(m["resource"]["name"], m["resource"]["target"]["averageUtilization"]) for m in spec["metrics"]] == [
        ("cpu", 70),
        ("memory", 80),
    ]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert spec["behavior"]["scaleDown"]["policies"][0]["value"] == 20
    assert spec["behavior"]["scaleUp"]["policies"][0]["value"] == 2


def test_the_pods_run_as_their_own_service_account_with_no_token(single: ProgramRun) -> None:
    account = only(single, "ServiceAccount").inputs
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["name"] == "shop"
    assert "annotations" not in account["metadata"]
    pod = only(single, "Deployment").inputs["spec"]["template"]["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("shop", False)
    identity = {"iam.gke.io/gcp-service-account": "shop@project.iam.gserviceaccount.com"}
    annotated = _build(service_account=ServiceAccountSettings(annotations=identity))
    assert only(annotated, "ServiceAccount").inputs["metadata"]["annotations"] == identity


def test_two_services_in_one_program_do_not_collide() -> None:
    def build() -> None:
        WebService("shop", _args())
        cart = {
            "labels": standard_labels("cart", "cart-test", "web", "webapp"),
            "object_name": "cart",
            "image": ImageSettings(repository="ghcr.io/example/cart", tag="1.0.0"),
        }
        WebService("cart", _args(**cart))

    run = run_components(build)
    deployments = kube(run, "Deployment")
    assert len({d.object_name for d in deployments}) == 2
    selectors = [d.inputs["spec"]["selector"]["matchLabels"] for d in deployments]
    assert selectors[0] != selectors[1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replicas": 0}, "replicas is 0; it must be at least 1"),
        (
            {"service": ServiceSettings(type="NodePort"), "metrics": MetricsSettings(service_monitor=True)},
            "a NodePort Service would publish /metrics outside the cluster",
        ),
        ({"object_name": "Shop_1"}, "object_name 'Shop_1' is not a DNS label"),
    ],
)
def test_bad_arguments_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(**overrides)


def test_outputs_are_attributes() -> None:
    seen: dict[str, Any] = {}

    def build() -> pulumi.Output[Any]:
        service = WebService("shop", _args())
        seen["selector"] = service.selector
        return pulumi.Output.all(service.deployment_name, service.service_name).apply(
            lambda names: seen.update(names=names)
        )

    run_components(build)
    assert seen["selector"] == SELECTOR
    assert seen["names"] == ["shop", "shop"]


def test_every_object_but_the_config_has_the_stable_name() -> None:
    # The in-cluster address and `kubectl rollout status deploy/shop` are known before the first `up`.
    run = _build(
        replicas=3,
        autoscaling=AutoscalingSettings(enabled=True, min_replicas=3, max_replicas=9, target_cpu_utilization=65),
    )
    names = {r.kind: r.inputs["metadata"].get("name") for r in run.resources if r.is_kubernetes}
    assert names == dict.fromkeys(
        ["ServiceAccount", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "HorizontalPodAutoscaler"],
        "shop",
    )


def test_the_deployment_takes_back_fields_changed_by_hand(single: ProgramRun) -> None:
    # Without it a manual `kubectl scale` makes every later `pulumi up` fail with an apply conflict.
    assert only(single, "Deployment").inputs["metadata"]["annotations"]["pulumi.com/patchForce"] == "true"


def test_pods_are_annotated_for_scraping_and_only_prometheus_reaches_the_management_port(single: ProgramRun) -> None:
    template = only(single, "Deployment").inputs["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8081",
        "prometheus.io/path": "/metrics",
    }
    rules = only(single, "NetworkPolicy").inputs["spec"]["ingress"]
    assert rules[0] == {"ports": [{"port": "http", "protocol": "TCP"}]}
    assert rules[1] == {
        "ports": [{"port": "management", "protocol": "TCP"}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }
    assert [port["name"] for port in only(single, "Service").inputs["spec"]["ports"]] == ["http"]
    assert kube(single, "ServiceMonitor") == []


def test_a_service_monitor_selects_the_service_by_its_management_port() -> None:
    run = _build(metrics=MetricsSettings(service_monitor=True, interval="15s", scrape_namespace="observability"))
    monitor = only(run, "ServiceMonitor")
    assert monitor.inputs["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor.inputs["metadata"]["name"] == "shop"
    assert monitor.inputs["spec"] == {
        "selector": {"matchLabels": SELECTOR},
        "endpoints": [{"port": "management", "path": "/metrics", "interval": "15s"}],
    }
    service_ports = only(run, "Service").inputs["spec"]["ports"]
    assert service_ports[1] == {"name": "management", "port": 8081, "targetPort": "management", "protocol": "TCP"}
    assert only(run, "Service").inputs["spec"]["selector"] == SELECTOR
    peer = only(run, "NetworkPolicy").inputs["spec"]["ingress"][1]["from"][0]
    assert peer == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}


def test_image_pull_secrets_go_to_the_pod_spec_and_are_absent_by_default(single: ProgramRun) -> None:
    assert "imagePullSecrets" not in only(single, "Deployment").inputs["spec"]["template"]["spec"]
    run = _build(image_pull_secrets=("registry-login", "mirror.example.com-login"))
    pod = only(run, "Deployment").inputs["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-login"}, {"name": "mirror.example.com-login"}]


def test_a_rollout_fails_up_when_kubernetes_gives_up_on_it(single: ProgramRun) -> None:
    default = only(single, "Deployment").inputs
    assert default["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == "600"
    assert default["spec"]["progressDeadlineSeconds"] == 600
    deployment = only(_build(rollout_timeout_seconds=90), "Deployment").inputs
    assert deployment["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == "90"
    assert deployment["spec"]["progressDeadlineSeconds"] == 90

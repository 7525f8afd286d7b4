"""The policy pack's validation functions, with compliant and non-compliant Kubernetes resources."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from policy.webapp_policies import (
    DEPLOY_CONFIG,
    DIGEST_POLICY,
    POLICIES,
    image_problem,
    validate_containers_run_unprivileged,
    validate_disruption_budgets,
    validate_image_pinned,
    validate_images_by_digest,
    validate_no_controller_snippets,
    validate_no_secrets_in_configmap,
    validate_no_test_routes,
    validate_off_the_control_plane,
    validate_outside_the_clusters_namespaces,
    validate_pods_share_nothing_with_the_node,
    validate_probes_use_the_management_port,
    validate_readiness_probe,
    validate_requests_and_limits,
)
from tests.policy_samples import CONTAINER, LABELS
from tests.pulumi_helpers import committed_stack
from tools.policy_checks import PolicyResource as Resource
from tools.policy_checks import PolicyStack as Stack
from tools.policy_checks import pack_violations
from tools.policy_checks import violations as _violations
from tools.stack_config import REPO_ROOT, stack_names


def _deployment(replicas: int = 1, **container_changes: Any) -> Resource:
    container = copy.deepcopy(CONTAINER)
    for key, value in container_changes.items():
        if value is None:
            container.pop(key, None)
        else:
            container[key] = value
    return Resource(
        "kubernetes:apps/v1:Deployment",
        {
            "metadata": {"name": "webapp-deploy-1"},
            "spec": {
                "replicas": replicas,
                "template": {
                    "metadata": {"labels": {**LABELS, "app.kubernetes.io/version": "1.4.2"}},
                    "spec": {"containers": [container]},
                },
            },
        },
        name="webapp-deploy",
    )


def _pdb(match_labels: dict[str, str]) -> Resource:
    return Resource("kubernetes:policy/v1:PodDisruptionBudget", {"spec": {"selector": {"matchLabels": match_labels}}})


def test_the_deploy_config_turns_on_the_digest_rule_that_the_pack_leaves_off() -> None:
    config = json.loads((REPO_ROOT / "policy" / DEPLOY_CONFIG).read_text())
    levels = {p.name: p.enforcement_level for p in POLICIES}
    assert set(config) <= set(levels), "the config names only policies the pack has"
    assert config == {DIGEST_POLICY: "mandatory"}
    assert levels[DIGEST_POLICY] == EnforcementLevel.DISABLED
    assert [name for name, level in levels.items() if level is not None] == [DIGEST_POLICY], (
        "the rest: the pack's level"
    )


@pytest.mark.parametrize(
    ("image", "violations"),
    [("ghcr.io/example/webapp:1.4.2", 1), ("ghcr.io/example/webapp:1.4.2@sha256:" + "c" * 64, 0)],
)
def test_images_by_digest(image: str, violations: int) -> None:
    found = _violations(validate_images_by_digest, _deployment(image=image))
    assert len(found) == violations
    assert all("by tag only" in message for message in found)


def test_the_pack_has_these_policies_in_this_order() -> None:
    assert [p.name for p in POLICIES] == [
        "containers-set-requests-and-limits",
        "images-are-pinned",
        "deployments-have-readiness-probes",
        "configmaps-hold-no-secrets",
        "no-test-routes",
        "probes-use-the-management-port",
        "pods-share-nothing-with-the-node",
        "containers-run-unprivileged",
        "no-controller-snippets",
        "outside-the-clusters-namespaces",
        "pods-stay-off-the-control-plane",
        "replicated-deployments-have-disruption-budgets",
        "images-by-digest",
    ]


@pytest.mark.parametrize(
    ("env", "violations"),
    [
        ([{"name": "GREETING", "value": "hi"}], 0),
        ([{"name": "ENABLE_TEST_ROUTES", "value": "true"}], 1),
        # Pinned off by the Deployment itself, so that no Secret in its envFrom can turn the routes on.
        ([{"name": "ENABLE_TEST_ROUTES", "value": "false"}], 0),
        ([{"name": "ENABLE_TEST_ROUTES", "value": "1"}], 1),
        ([{"name": "ENABLE_TEST_ROUTES"}], 1),
    ],
)
def test_no_workload_turns_on_the_test_routes(env: list[dict[str, str]], violations: int) -> None:
    found = _violations(validate_no_test_routes, _deployment(env=env))
    assert len(found) == violations
    assert all("ENABLE_TEST_ROUTES" in message and "'web'" in message for message in found)
    config_map = Resource("kubernetes:core/v1:ConfigMap", {"data": {"ENABLE_TEST_ROUTES": "true"}})
    assert len(_violations(validate_no_test_routes, config_map)) == 1


def test_requests_and_limits_compliant() -> None:
    assert _violations(validate_requests_and_limits, _deployment()) == []


@pytest.mark.parametrize(
    ("resources", "missing"),
    [
        (None, "requests.cpu, requests.memory, limits.cpu, limits.memory"),
        ({"requests": {"cpu": "1", "memory": "1Gi"}}, "limits.cpu, limits.memory"),
        ({"requests": {"cpu": "1"}, "limits": {"cpu": "1", "memory": "1Gi"}}, "requests.memory"),
    ],
)
def test_requests_and_limits_missing(resources: Any, missing: str) -> None:
    violations = _violations(validate_requests_and_limits, _deployment(resources=resources))
    assert violations == [f"Deployment container 'web' sets no {missing}; set requests and limits for cpu and memory."]


def test_requests_and_limits_apply_to_cronjobs_too() -> None:
    cronjob = Resource(
        "kubernetes:batch/v1:CronJob",
        {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job", "image": "x:1"}]}}}}}},
    )
    assert len(_violations(validate_requests_and_limits, cronjob)) == 1


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("ghcr.io/example/webapp:1.4.2", None),
        ("ghcr.io/example/webapp@sha256:" + "a" * 64, None),
        ("localhost:5000/webapp:2.0.0", None),
        ("ghcr.io/example/webapp:latest", "'latest' cannot be tracked"),
        ("ghcr.io/example/webapp:Latest", "'latest' cannot be tracked"),  # the same rule as the settings'
        ("ghcr.io/example/webapp:", "the image tag is empty"),
        ("ghcr.io/example/webapp", "has no tag"),
        ("localhost:5000/webapp", "has no tag"),
    ],
)
def test_image_pinning(image: str, problem: str | None) -> None:
    found = image_problem(image)
    assert (found is None) if problem is None else (problem in (found or ""))
    violations = _violations(validate_image_pinned, _deployment(image=image))
    assert len(violations) == (0 if problem is None else 1)


def test_readiness_probe_required_on_deployments() -> None:
    assert _violations(validate_readiness_probe, _deployment()) == []
    assert _violations(validate_readiness_probe, _deployment(readinessProbe=None)) == [
        "Deployment container 'web' has no readinessProbe; traffic would reach it before it is ready."
    ]


@pytest.mark.parametrize(
    ("data", "count"),
    [({"GREETING": "hi", "LOG_LEVEL": "info"}, 0), ({"DB_PASSWORD": "x", "API_KEY": "y", "GREETING": "z"}, 2)],
)
def test_configmaps_hold_no_secret_looking_keys(data: dict[str, str], count: int) -> None:
    config_map = Resource("kubernetes:core/v1:ConfigMap", {"data": data})
    assert len(_violations(validate_no_secrets_in_configmap, config_map)) == count


def test_single_replica_needs_no_pdb() -> None:
    assert _violations(validate_disruption_budgets, Stack([_deployment(replicas=1)])) == []


def test_replicated_deployment_without_pdb_is_a_violation() -> None:
    violations = _violations(validate_disruption_budgets, Stack([_deployment(replicas=3)]))
    assert len(violations) == 1
    assert "runs 3 replicas but no PodDisruptionBudget selects its pods" in violations[0]


def test_pdb_must_select_the_deployments_pods() -> None:
    other = _pdb({"app.kubernetes.io/name": "other"})
    assert len(_violations(validate_disruption_budgets, Stack([_deployment(replicas=3), other]))) == 1
    matching = _pdb(LABELS)
    assert _violations(validate_disruption_budgets, Stack([_deployment(replicas=3), matching])) == []


def test_autoscaled_minimum_counts_as_replicas() -> None:
    hpa = Resource(
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "webapp-deploy-1"}, "minReplicas": 2}},
    )
    assert len(_violations(validate_disruption_budgets, Stack([_deployment(replicas=1), hpa]))) == 1


@pytest.mark.parametrize("stack", stack_names())
def test_every_rendered_stack_complies_with_the_pack(stack: str) -> None:
    assert pack_violations(committed_stack(stack).run) == []


def test_the_pack_uses_the_projects_rules_verbatim() -> None:
    # The pack runs in its own virtualenv, so it gets webapp_platform/config/rules.py as a copy (`make policy-rules`).
    rules = REPO_ROOT / "webapp_platform" / "config" / "rules.py"
    assert (REPO_ROOT / "policy" / "webapp_rules.py").read_text() == rules.read_text()


MANAGEMENT_PORTS = [{"name": "http", "containerPort": 8080}, {"name": "management", "containerPort": 8081}]


@pytest.mark.parametrize(
    ("ports", "port", "violations"),
    [
        pytest.param(MANAGEMENT_PORTS, "management", 0, id="by-name"),
        pytest.param(MANAGEMENT_PORTS, 8081, 0, id="by-number"),
        pytest.param(MANAGEMENT_PORTS, "http", 2, id="traffic-port"),
        pytest.param(MANAGEMENT_PORTS, 8080, 2, id="traffic-port-number"),
        pytest.param([{"name": "http", "containerPort": 8080}], "http", 0, id="no-management-port"),
    ],
)
def test_probes_use_the_management_port_when_there_is_one(ports: list[Any], port: Any, violations: int) -> None:
    probe = {"httpGet": {"path": "/ready", "port": port}}
    deployment = _deployment(ports=ports, readinessProbe=probe, livenessProbe=probe)
    found = _violations(validate_probes_use_the_management_port, deployment)
    assert len(found) == violations
    if violations:
        assert found[0] == (
            f"Deployment container 'web': livenessProbe calls '/ready' on port {port!r}, where it waits behind "
            "busy request threads; probe the 'management' port."
        )


HARDENED: dict[str, Any] = CONTAINER["securityContext"]


def _pod_with(pod_changes: dict[str, Any], **context_changes: Any) -> Resource:
    deployment = _deployment(securityContext={**HARDENED, **context_changes})
    deployment.props["spec"]["template"]["spec"].update(pod_changes)
    return deployment


def test_a_deployment_that_owns_the_node_fails_both_node_policies() -> None:
    # What the issue's reviewer deployed beside the program: privileged, host namespaces, / mounted, root, SYS_ADMIN.
    hostile = _pod_with(
        {
            "hostNetwork": True,
            "hostPID": True,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "securityContext": {"runAsUser": 0},
        },
        privileged=True,
        allowPrivilegeEscalation=True,
        capabilities={"add": ["SYS_ADMIN"]},
        runAsNonRoot=None,
        runAsUser=None,
    )
    del hostile.props["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"]
    del hostile.props["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"]
    node = _violations(validate_pods_share_nothing_with_the_node, hostile)
    assert node == [
        "Deployment pod sets hostNetwork, hostPID: it would share the node's namespaces.",
        "Deployment volume 'root' mounts the node's '/' (hostPath); use an emptyDir, a ConfigMap, a Secret or a "
        "PersistentVolumeClaim.",
    ]
    [unprivileged] = _violations(validate_containers_run_unprivileged, hostile)
    assert unprivileged == (
        "Deployment container 'web' runs privileged; does not set allowPrivilegeEscalation: false; adds the "
        "capabilities SYS_ADMIN; does not drop ALL capabilities; runs as root (runAsUser: 0); does not set "
        "runAsNonRoot: true."
    )


@pytest.mark.parametrize(
    ("pod_changes", "context_changes", "violations"),
    [
        ({}, {}, 0),
        ({"securityContext": {"runAsNonRoot": True, "runAsUser": 10001}}, {"runAsNonRoot": None}, 0),
        ({}, {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}, 0),
        ({}, {"runAsUser": 0}, 1),
        ({}, {"capabilities": {"drop": ["NET_RAW"]}}, 1),
        ({"hostIPC": True}, {}, 1),
        ({"hostNetwork": False}, {}, 0),
        ({"volumes": [{"name": "tmp", "emptyDir": {}}]}, {}, 0),
    ],
)
def test_node_and_privilege_policies_case_by_case(
    pod_changes: dict[str, Any], context_changes: dict[str, Any], violations: int
) -> None:
    resource = _pod_with(pod_changes, **{k: v for k, v in context_changes.items() if v is not None})
    for key, value in context_changes.items():
        if value is None:
            del resource.props["spec"]["template"]["spec"]["containers"][0]["securityContext"][key]
    found = _violations(validate_pods_share_nothing_with_the_node, resource)
    found += _violations(validate_containers_run_unprivileged, resource)
    assert len(found) == violations, found


def test_a_host_port_is_refused() -> None:
    resource = _deployment(ports=[{"containerPort": 8080, "hostPort": 80}], securityContext=HARDENED)
    [found] = _violations(validate_pods_share_nothing_with_the_node, resource)
    assert "binds the node's port 80" in found


# Issue 35, F9: the pack refuses what the settings refuse, for whatever else runs through it.


@pytest.mark.parametrize(
    ("annotations", "violations"),
    [
        ({"nginx.ingress.kubernetes.io/proxy-body-size": "8m", "cert-manager.io/cluster-issuer": "le"}, 0),
        ({"nginx.ingress.kubernetes.io/server-snippet": "location /admin { allow all; }"}, 1),
        ({"nginx.ingress.kubernetes.io/configuration-snippet": "x", "nginx.org/server-snippets": "y"}, 2),
    ],
)
def test_controller_snippets_are_refused(annotations: dict[str, str], violations: int) -> None:
    ingress = Resource("kubernetes:networking.k8s.io/v1:Ingress", {"metadata": {"annotations": annotations}})
    found = _violations(validate_no_controller_snippets, ingress)
    assert len(found) == violations, found
    assert all(message.startswith("Ingress annotation ") and "configuration snippet" in message for message in found)


@pytest.mark.parametrize(
    ("resource_type", "metadata", "violations"),
    [
        ("kubernetes:apps/v1:Deployment", {"name": "web", "namespace": "webapp-prod"}, 0),
        ("kubernetes:apps/v1:Deployment", {"name": "web", "namespace": "kube-system"}, 1),
        ("kubernetes:core/v1:ConfigMap", {"name": "web", "namespace": "default"}, 1),
        ("kubernetes:core/v1:Namespace", {"name": "kube-webapp"}, 1),
        ("kubernetes:core/v1:Namespace", {"name": "webapp-dev"}, 0),
    ],
)
def test_objects_stay_out_of_the_clusters_namespaces(
    resource_type: str, metadata: dict[str, str], violations: int
) -> None:
    found = _violations(validate_outside_the_clusters_namespaces, Resource(resource_type, {"metadata": metadata}))
    assert len(found) == violations, found
    assert all("is the cluster's own namespace" in message for message in found)


CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


@pytest.mark.parametrize(
    ("pod_changes", "violations"),
    [
        ({"nodeSelector": {"node-pool": "web"}}, 0),
        ({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]}, 0),
        ({"nodeSelector": {CONTROL_PLANE: ""}}, 1),
        ({"tolerations": [{"operator": "Exists"}]}, 1),
        ({"tolerations": [{"key": "node-role.kubernetes.io/master", "operator": "Exists"}]}, 1),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 1,
                                "preference": {"matchExpressions": [{"key": CONTROL_PLANE, "operator": "Exists"}]},
                            }
                        ]
                    }
                }
            },
            1,
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": CONTROL_PLANE, "operator": "DoesNotExist"}]}
                            ]
                        }
                    }
                }
            },
            0,
        ),
    ],
)
def test_pods_stay_off_the_control_plane(pod_changes: dict[str, Any], violations: int) -> None:
    found = _violations(validate_off_the_control_plane, _pod_with(pod_changes))
    assert len(found) == violations, found
    assert all(message.startswith("Deployment pod: ") for message in found)


def test_a_credential_in_a_configmap_value_is_refused_without_repeating_it() -> None:
    config_map = Resource("kubernetes:core/v1:ConfigMap", {"data": {"DATABASE_URL": "postgres://u:hunter2@db/app"}})
    [found] = _violations(validate_no_secrets_in_configmap, config_map)
    assert found == (
        "ConfigMap key 'DATABASE_URL' holds a password in a URL (scheme://user:password@host); put it in a Secret "
        "instead."
    )

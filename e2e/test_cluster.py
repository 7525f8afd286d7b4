"""Every stack against a real API server on 127.0.0.1: up, what Kubernetes made of it, changes, drift, destroy.

The control plane (localcluster/control_plane.py) runs the API server with its default
admission plugins, so Pod Security `restricted`, defaulting, server-side
validation and the provider's await logic all act as in a cluster; kwok's
simulated kubelets make the pods Running and Ready. No render mode here.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.github_steps import Runner
from e2e.stacks import (
    DRIFT_STEP,
    PROMOTE_STEP,
    SECRET_VALUE,
    drift_job,
    expected_replicas,
    make_render,
    promotion_job,
    stack_file,
)
from harness.processes import wait_until
from localcluster.control_plane import ZONES, ControlPlane, running_control_plane
from localcluster.kubectl import Kubectl
from localcluster.platform import install_routing
from localcluster.pulumi_cli import TIMINGS, Workspace
from tools.stack_config import REPO_ROOT, stack_names

# Nothing fills in an Ingress's address, or accepts an HTTPRoute, without a controller; the provider would wait for one.
SKIP_INGRESS_AWAIT = "pulumi config set --path 'webapp:ingress.annotations[\"pulumi.com/skipAwait\"]' true"
NO_INGRESS_CONTROLLER = "e2e.example/no-ingress-controller"
NO_GATEWAY_CONTROLLER = "e2e.example/no-gateway-controller"
SKIP_ROUTE_AWAIT = "pulumi config set --path 'webapp:httpRoute.annotations[\"pulumi.com/skipAwait\"]' true"


def _skip_awaits_no_controller_ends(ws: Workspace, stack: str) -> None:
    """Skip the provider's await on the Ingress or HTTPRoute a stack has: here no controller would complete it."""
    file = stack_file(stack)
    if file.get("webapp:ingress", {}).get("enabled"):
        ws.run(SKIP_INGRESS_AWAIT)
    if file.get("webapp:httpRoute", {}).get("enabled"):
        ws.run(SKIP_ROUTE_AWAIT)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One control plane for the module, stopped at its end."""
    with running_control_plane(tmp_path_factory.mktemp("cluster")) as started:
        TIMINGS.append(("control plane", "start: etcd, apiserver, controllers, scheduler, kwok", started.started_in))
        # The platform's part the stacks expect (their prerequisites): no controller implements them here.
        install_routing(Kubectl(started.kubeconfig), NO_INGRESS_CONTROLLER, NO_GATEWAY_CONTROLLER, 80)
        yield started


def _cluster_workspace(plane: ControlPlane, tmp_path: Path, stack: str) -> Workspace:
    """A workspace pointed at `plane`, logged in, with `stack` selected (created)."""
    ws = Workspace.create(tmp_path)
    ws.label = f"cluster {stack}"
    ws.extra_env["KUBECONFIG"] = str(plane.kubeconfig)
    ws.login()
    ws.run(f"pulumi stack select --create {stack}")
    return ws


def _set_secrets(ws: Workspace, stack: str) -> None:
    """Every secret the stack lists, set as the README says (the e2e's random value)."""
    for name in stack_file(stack).get("webapp:secretKeys", []):
        ws.run(f"pulumi config set --secret --path 'webapp:secrets.{name}' '{SECRET_VALUE}'")


def _deployed(plane: ControlPlane, tmp_path: Path, stack: str) -> Workspace:
    """A workspace whose stack is up on `plane`, its secrets set as the README says."""
    ws = _cluster_workspace(plane, tmp_path, stack)
    _set_secrets(ws, stack)
    _skip_awaits_no_controller_ends(ws, stack)
    ws.run("pulumi up --yes")
    return ws


def _deployment(plane: ControlPlane, namespace: str) -> dict[str, Any]:
    (deployment,) = plane.kubectl_json("get", "deployments", "-n", namespace)["items"]
    return dict(deployment)


def _check_objects(plane: ControlPlane, stack: str) -> None:
    """kubectl sees what the stack file asks for: replicas ready, labels, probes, security context, endpoints."""
    file = stack_file(stack)
    namespace = file["webapp:namespace"]
    replicas = expected_replicas(file)
    deployment = _deployment(plane, namespace)
    assert deployment["status"]["readyReplicas"] == replicas
    assert deployment["status"]["availableReplicas"] == replicas
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/version"] == str(file["webapp:image"]["tag"])
    (container,) = template["spec"]["containers"]
    image = file["webapp:image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}@{image['digest']}", "every stack runs by digest"
    assert container["resources"] == file["webapp:resources"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "management", "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "management", "scheme": "HTTP"}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert template["spec"]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"

    pods = plane.kubectl_json("get", "pods", "-n", namespace)["items"]
    assert sum(1 for pod in pods if pod["status"].get("phase") == "Running") == replicas
    _check_identity_and_placement(plane, file, deployment, pods)
    namespace_labels = plane.kubectl_json("get", "namespace", namespace)["metadata"]["labels"]
    assert namespace_labels["pod-security.kubernetes.io/enforce"] == "restricted"

    slices = plane.kubectl_json("get", "endpointslices", "-n", namespace)["items"]
    ready = [e for s in slices for e in s.get("endpoints") or [] if e.get("conditions", {}).get("ready")]
    assert len(ready) == replicas

    kinds = {
        line.split("/")[0]
        for line in plane.kubectl(
            "get", "all,ingress,pdb,netpol,cm,secret", "-n", namespace, "-o", "name"
        ).stdout.split()
    }
    assert {"deployment.apps", "service", "networkpolicy.networking.k8s.io", "configmap", "secret"} <= kinds
    assert ("ingress.networking.k8s.io" in kinds) == bool(file.get("webapp:ingress", {}).get("enabled"))
    assert ("poddisruptionbudget.policy" in kinds) == (replicas > 1)
    scaling = file.get("webapp:autoscaling", {})
    assert ("horizontalpodautoscaler.autoscaling" in kinds) == bool(scaling.get("enabled"))
    if scaling.get("enabled"):  # the API server kept the memory target and the pace as the stack file says
        hpa = plane.kubectl_json("get", "hpa", deployment["metadata"]["name"], "-n", namespace)["spec"]
        resources = {metric["resource"]["name"] for metric in hpa["metrics"]}
        assert resources == {"cpu", *(["memory"] if scaling.get("targetMemoryUtilization") else [])}
        assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == scaling.get(
            "scaleDownStabilizationSeconds", 300
        )

    _check_routing(plane, file, namespace)
    _check_monitoring(plane, file, namespace)


def _check_monitoring(plane: ControlPlane, file: dict[str, Any], namespace: str) -> None:
    """The ServiceMonitor, the PrometheusRule (held to the operator's own CRD) and the dashboard, as the stack says."""
    metrics = file.get("webapp:metrics", {})
    # The operator's own PrometheusRule CRD holds the rules' shape (groups, rules, for, labels) on the API server.
    rules = plane.kubectl_json("get", "prometheusrules", "-n", namespace)["items"]
    assert len(rules) == int(bool(metrics.get("alerts")))
    for rule in rules:
        assert metrics.get("labels", {}).items() <= rule["metadata"]["labels"].items()
        assert any(r.get("alert") == "WebappWorkersStalled" for g in rule["spec"]["groups"] for r in g["rules"])
    dashboards = plane.kubectl_json("get", "configmaps", "-n", namespace, "-l", "grafana_dashboard=1")["items"]
    assert len(dashboards) == int(bool(metrics.get("dashboard")))
    monitors = plane.kubectl_json("get", "servicemonitors", "-n", namespace)["items"]
    assert len(monitors) == int(bool(metrics.get("serviceMonitor")))
    for monitor in monitors:
        service = plane.kubectl_json("get", "service", monitor["metadata"]["name"], "-n", namespace)
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


def _check_routing(plane: ControlPlane, file: dict[str, Any], namespace: str) -> None:
    """The Ingress's hosts and certificates, or the HTTPRoute (held to the Gateway API's own CRD), as the stack says."""
    ingress = file.get("webapp:ingress", {})
    for found in plane.kubectl_json("get", "ingress", "-n", namespace)["items"]:
        assert [rule["host"] for rule in found["spec"]["rules"]] == ingress["hosts"]
        assert [entry["hosts"] for entry in found["spec"].get("tls", [])] == [
            e["hosts"] for e in ingress.get("tls", [])
        ]
    route = file.get("webapp:httpRoute", {})
    routes = plane.kubectl_json("get", "httproutes.gateway.networking.k8s.io", "-n", namespace)["items"]
    assert len(routes) == int(bool(route.get("enabled")))
    for found in routes:
        assert found["spec"]["hostnames"] == route["hostnames"]
        [parent] = found["spec"]["parentRefs"]
        assert (parent["name"], parent["namespace"]) == (route["gateway"]["name"], route["gateway"]["namespace"])
        [rule] = found["spec"]["rules"]
        service = plane.kubectl_json("get", "service", rule["backendRefs"][0]["name"], "-n", namespace)
        assert rule["backendRefs"][0]["port"] == service["spec"]["ports"][0]["port"]


def _check_identity_and_placement(
    plane: ControlPlane, file: dict[str, Any], deployment: dict[str, Any], pods: list[dict[str, Any]]
) -> None:
    """The pods run as the stack's own ServiceAccount, with no token, and spread over zones as the stack says."""
    namespace, replicas = file["webapp:namespace"], expected_replicas(file)
    # The stack's own ServiceAccount, as the pods see it: no token mounted, the stack's annotations on it.
    account = plane.kubectl_json("get", "serviceaccount", deployment["metadata"]["name"], "-n", namespace)
    assert account["automountServiceAccountToken"] is False
    annotations = file.get("webapp:serviceAccount", {}).get("annotations", {})
    assert annotations.items() <= account["metadata"].get("annotations", {}).items()
    # Spread over the kwok nodes' three zones; `zoneSpread: required` guarantees one pod per zone.
    zone_of = {
        node["metadata"]["name"]: node["metadata"]["labels"]["topology.kubernetes.io/zone"]
        for node in plane.kubectl_json("get", "nodes")["items"]
    }
    zones = [zone_of[pod["spec"]["nodeName"]] for pod in pods if pod["spec"].get("nodeName")]
    affinity = file.get("webapp:scheduling", {}).get("affinity")
    assert deployment["spec"]["template"]["spec"].get("affinity") == affinity, "the API server kept it as written"
    if file.get("webapp:scheduling", {}).get("zoneSpread") == "required":
        assert len(set(zones)) == min(replicas, len(ZONES)), zones
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
        assert not any(volume.get("projected") for volume in pod["spec"].get("volumes", [])), "no token volume"


def _check_pod_security_refuses_an_unhardened_pod(plane: ControlPlane, namespace: str) -> None:
    refused = plane.kubectl("run", "unhardened", "--image=nginx:1.27.3", "-n", namespace, check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted' in refused.stderr, refused.stderr


def _check_render_is_accepted(plane: ControlPlane, stack: str, tmp_path: Path) -> None:
    """Every manifest of `make render` passes the API server's validation and admission (server-side dry run)."""
    rendered = make_render(stack, tmp_path / "offline")
    applied = plane.kubectl("apply", "--dry-run=server", "-f", str(rendered))
    assert applied.stdout.count("(server dry run)") == len(list(rendered.glob("*.yaml")))


KUBECONFIG_STEP = "Point kubectl at this stack's cluster, read-only (the environment's secret)"
REPORT_STEP = "Report drift"
NEW_VERSION = f"ghcr.io/example/webapp:1.4.3@sha256:{'3' * 64}"
"""The version the runbook's "Deploy a new version" releases onto staging (kwok pulls no image)."""


def _drift_runner(plane: ControlPlane, ws: Workspace, stack: str, tmp_path: Path) -> tuple[Runner, Path]:
    """drift.yml's job for `stack` on a stand-in runner: its kubeconfig step already run, `gh` recording its calls."""
    standin = tmp_path / "gh-standin"
    standin.mkdir()
    calls = tmp_path / "gh-calls"
    gh = standin / "gh"
    gh.write_text('#!/bin/sh\necho "$*" >> "$GH_CALLS"\n')  # GitHub's API is out of reach: record, answer nothing
    gh.chmod(0o755)
    environment = ws.environment()
    environment.update({"PATH": f"{standin}:{environment['PATH']}", "GH_CALLS": str(calls)})
    runner = drift_job(
        stack,
        tmp_path / "runner",
        environment,
        **{
            "secrets.KUBECONFIG": base64.b64encode(plane.kubeconfig.read_bytes()).decode(),
            "github.token": "e2e-has-no-github-token",
        },
    )
    pointed = runner.run(KUBECONFIG_STEP, ws.root)
    assert pointed.returncode == 0, pointed.output
    return runner, calls


def _check_drift(plane: ControlPlane, ws: Workspace, stack: str, tmp_path: Path) -> None:
    """drift.yml's own steps: no drift after refresh; a manual scale is drift (the step fails, the report is
    written and filed) unless the autoscaler owns the replica count; none again after `pulumi up --refresh`."""
    ws.run("pulumi refresh --yes")
    ws.run("pulumi preview --expect-no-changes")
    runner, calls = _drift_runner(plane, ws, stack, tmp_path)
    clean = runner.run(DRIFT_STEP, ws.root)
    assert clean.returncode == 0, clean.output[-3000:]
    file = stack_file(stack)
    namespace = file["webapp:namespace"]
    name = _deployment(plane, namespace)["metadata"]["name"]
    plane.kubectl("scale", f"deployment/{name}", "-n", namespace, f"--replicas={expected_replicas(file) + 1}")
    drift = runner.run(DRIFT_STEP, ws.root)
    if file.get("webapp:autoscaling", {}).get("enabled"):
        assert drift.returncode == 0, drift.output[-3000:]
    else:
        assert drift.returncode != 0, "drift must fail the step (its `if: failure()` report runs only then)"
        assert "replicas" in (runner.temp / "drift.txt").read_text()
        assert runner.step(REPORT_STEP)["if"] == "failure()"
        report = runner.run(REPORT_STEP, ws.root)
        assert report.returncode == 0, report.output
        assert f"## Drift in stack {stack}" in runner.summary()
        assert "replicas" in runner.summary()
        assert f"issue create --title Drift detected in stack {stack}" in calls.read_text()
    ws.run("pulumi up --refresh --yes")
    reconciled = runner.run(DRIFT_STEP, ws.root)
    assert reconciled.returncode == 0, reconciled.output[-3000:]


@pytest.mark.parametrize("stack", stack_names())
def test_stack_on_a_real_api_server(stack: str, plane: ControlPlane, tmp_path: Path) -> None:
    ws = _deployed(plane, tmp_path, stack)
    namespace = stack_file(stack)["webapp:namespace"]
    _check_objects(plane, stack)
    _check_pod_security_refuses_an_unhardened_pod(plane, namespace)
    _check_render_is_accepted(plane, stack, tmp_path)
    _check_drift(plane, ws, stack, tmp_path)

    ws.run("pulumi destroy --yes")
    wait_until(
        f"namespace {namespace} gone",
        lambda: plane.kubectl("get", "namespace", namespace, check=False).returncode != 0,
        90,
        lambda: plane.kubectl("get", "all", "-n", namespace, check=False).stdout,
    )


@contextlib.contextmanager
def _sampling(plane: ControlPlane, namespace: str) -> Iterator[list[dict[str, Any]]]:
    """Snapshots of the namespace's Deployment and ConfigMaps, taken every 0.2 s while the block runs."""
    samples: list[dict[str, Any]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(AssertionError, ValueError):
                found = plane.kubectl_json("get", "deployments,configmaps", "-n", namespace)["items"]
                deployments = [item for item in found if item["kind"] == "Deployment"]
                configs = {item["metadata"]["name"] for item in found if item["kind"] == "ConfigMap"}
                if deployments:
                    samples.append({"deployment": deployments[0], "configmaps": configs})
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield samples
    finally:
        stop.set()
        sampler.join(timeout=30)


def _env_from(pod_spec: dict[str, Any], ref: str) -> list[str]:
    """Names the container's envFrom reads, of one kind: `configMapRef` or `secretRef`."""
    return [source[ref]["name"] for source in pod_spec["containers"][0]["envFrom"] if ref in source]


def test_config_and_image_changes_roll_the_pods(plane: ControlPlane, tmp_path: Path) -> None:
    stack = "staging"
    ws = _deployed(plane, tmp_path, stack)
    namespace = stack_file(stack)["webapp:namespace"]
    replicas = expected_replicas(stack_file(stack))
    (old_config,) = [
        cm["metadata"]["name"]
        for cm in plane.kubectl_json("get", "configmaps", "-n", namespace)["items"]
        if cm["metadata"]["name"].startswith("webapp-cm-")
    ]
    old_revision = _deployment(plane, namespace)["metadata"]["annotations"]["deployment.kubernetes.io/revision"]

    # A new appConfig value: a new ConfigMap, a new ReplicaSet whose pods read it, the old ConfigMap deleted
    # only once the Deployment no longer names it (at no moment does the Deployment name a missing one).
    ws.run("pulumi config set --path 'webapp:appConfig.GREETING' 'Hello from the e2e'")
    with _sampling(plane, namespace) as samples:
        ws.run("pulumi up --yes")
    configs = {cm["metadata"]["name"]: cm for cm in plane.kubectl_json("get", "configmaps", "-n", namespace)["items"]}
    (new_config,) = [name for name in configs if name.startswith("webapp-cm-")]
    assert new_config != old_config
    assert configs[new_config]["data"]["GREETING"] == "Hello from the e2e"
    assert samples
    for sample in samples:
        assert (
            set(_env_from(sample["deployment"]["spec"]["template"]["spec"], "configMapRef")) <= sample["configmaps"]
        ), sample["configmaps"]
    assert any(old_config in sample["configmaps"] and new_config in sample["configmaps"] for sample in samples)
    deployment = _deployment(plane, namespace)
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] != old_revision
    pods = plane.kubectl_json("get", "pods", "-n", namespace)["items"]
    running = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    assert len(running) == replicas
    for pod in running:
        assert _env_from(pod["spec"], "configMapRef") == [new_config]

    # A new version, as the runbook deploys one (tools.promote writes its tag and digest together): a rolling
    # update that never has fewer available pods than desired.
    ws.run_python_module("runbook: deploy a new version", "tools.promote", "--image", NEW_VERSION, "--to", stack)
    with _sampling(plane, namespace) as samples:
        ws.run("pulumi up --yes")
    assert samples
    statuses = [sample["deployment"]["status"] for sample in samples]
    assert min(status.get("availableReplicas", 0) for status in statuses) >= replicas
    # The Deployment controller's own record, in etcd order: it surged a pod of the new ReplicaSet before it
    # removed one of the previous ReplicaSet.
    sets = plane.kubectl_json("get", "replicasets", "-n", namespace)["items"]
    by_revision = sorted(sets, key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))
    previous, current = by_revision[-2]["metadata"]["name"], by_revision[-1]["metadata"]["name"]
    assert by_revision[-1]["spec"]["template"]["spec"]["containers"][0]["image"].split("@")[0].endswith(":1.4.3")
    events = plane.kubectl_json("get", "events", "-n", namespace)["items"]
    messages = [
        event["message"]
        for event in sorted(events, key=lambda event: int(event["metadata"]["resourceVersion"]))
        if event["reason"] == "ScalingReplicaSet"
    ]
    first_up = next(i for i, m in enumerate(messages) if m.startswith(f"Scaled up replica set {current}"))
    first_down = next(i for i, m in enumerate(messages) if m.startswith(f"Scaled down replica set {previous}"))
    assert first_up < first_down, messages
    final = _deployment(plane, namespace)
    assert final["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_VERSION
    assert final["status"]["updatedReplicas"] == replicas
    _runbook_rollback_rotate_and_drain(plane, ws, stack, replicas, previous=_reference(stack_file(stack)))
    ws.run("pulumi destroy --yes")


def _reference(config: dict[str, Any]) -> str:
    """The image reference a stack file's `webapp:image` names: repository:tag@digest."""
    image = config["webapp:image"]
    return f"{image['repository']}:{image['tag']}@{image['digest']}"


def _runbook_rollback_rotate_and_drain(
    plane: ControlPlane, ws: Workspace, stack: str, replicas: int, *, previous: str
) -> None:
    """The runbook's steps (docs/runbook.md), as an operator would run them."""
    namespace = stack_file(stack)["webapp:namespace"]
    # Roll back: the previous reference, tag and digest (its update is in `pulumi stack history`), released like
    # any version.
    history = ws.run("pulumi stack history --json").json()
    assert [entry["kind"] for entry in history[:3]] == ["update", "update", "update"], history[:3]
    ws.run_python_module("runbook: roll back", "tools.promote", "--image", previous, "--to", stack)
    ws.run("pulumi up --yes")
    deployment = _deployment(plane, namespace)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == previous
    assert deployment["status"]["availableReplicas"] == replicas

    # Rotate a secret: a new immutable Secret, the pods roll onto it, the old one goes.
    (old_secret,) = _env_from(deployment["spec"]["template"]["spec"], "secretRef")
    ws.run("pulumi config set --secret --path 'webapp:secrets.DATABASE_PASSWORD' 'rotated-by-the-e2e'")
    ws.run("pulumi up --yes")
    deployment = _deployment(plane, namespace)
    (new_secret,) = _env_from(deployment["spec"]["template"]["spec"], "secretRef")
    assert new_secret != old_secret
    secrets = {item["metadata"]["name"] for item in plane.kubectl_json("get", "secrets", "-n", namespace)["items"]}
    assert new_secret in secrets
    assert old_secret not in secrets
    assert plane.kubectl_json("get", "secret", new_secret, "-n", namespace)["immutable"] is True

    # Drain a node: evictions respect the disruption budget, and the Deployment stays available.
    pods = plane.kubectl_json("get", "pods", "-n", namespace)["items"]
    node = pods[0]["spec"]["nodeName"]
    plane.kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s")
    wait_until(
        "Deployment available after the drain",
        lambda: _deployment(plane, namespace)["status"].get("availableReplicas") == replicas,
        60,
        lambda: plane.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout,
    )
    moved = plane.kubectl_json("get", "pods", "-n", namespace)["items"]
    assert node not in {pod["spec"]["nodeName"] for pod in moved}
    plane.kubectl("uncordon", node)


def test_an_existing_secret_is_read_and_not_managed(plane: ControlPlane, tmp_path: Path) -> None:
    # As External Secrets would: the Secret is written into the namespace by something else.
    stack = "dev"
    namespace = stack_file(stack)["webapp:namespace"]
    ws = _cluster_workspace(plane, tmp_path, stack)
    # The name is not secret, but the CLI guesses so from "Secret" in the key: --plaintext says otherwise.
    ws.run("pulumi config set --plaintext webapp:existingSecret webapp-env")
    _skip_awaits_no_controller_ends(ws, stack)
    ws.run("pulumi up --yes")
    plane.kubectl(
        "create", "secret", "generic", "webapp-env", "-n", namespace, f"--from-literal=DATABASE_PASSWORD={SECRET_VALUE}"
    )
    deployment = _deployment(plane, namespace)
    assert _env_from(deployment["spec"]["template"]["spec"], "secretRef") == ["webapp-env"]
    for pod in plane.kubectl_json("get", "pods", "-n", namespace)["items"]:
        assert _env_from(pod["spec"], "secretRef") == ["webapp-env"]
    secrets = [item["metadata"]["name"] for item in plane.kubectl_json("get", "secrets", "-n", namespace)["items"]]
    assert secrets == ["webapp-env"]
    assert "kubernetes:core/v1:Secret" not in ws.run("pulumi stack export").stdout
    ws.run("pulumi destroy --yes")


def test_a_route_no_gateway_accepts_fails_the_update_within_the_rollout_timeout(
    plane: ControlPlane, tmp_path: Path
) -> None:
    # No Gateway controller runs here, so nothing ever accepts dev's HTTPRoute: as with a Gateway whose listener
    # does not admit the namespace, `pulumi up` must fail naming what it waited for, not report success.
    stack = "dev"
    ws = _cluster_workspace(plane, tmp_path, stack)
    _set_secrets(ws, stack)
    ws.run("pulumi config set webapp:rolloutTimeoutSeconds 30")
    refused = ws.run("pulumi up --yes", check=False)
    assert refused.returncode != 0
    assert "HTTPRoute" in refused.output, refused.output[-3000:]
    assert "Accepted" in refused.output, refused.output[-3000:]
    ws.run("pulumi destroy --yes")


def test_refused_settings_change_nothing_in_the_cluster(plane: ControlPlane, tmp_path: Path) -> None:
    stack = "dev"
    ws = _deployed(plane, tmp_path, stack)
    namespace = stack_file(stack)["webapp:namespace"]
    before = plane.kubectl("get", "all,cm,secret,ingress,netpol", "-n", namespace, "-o", "name").stdout
    ws.run("pulumi config set --path 'webapp:image.tag' latest")
    ws.run("pulumi config set --path 'webapp:replicas' 2")
    refused = ws.run("pulumi up --yes", check=False)
    assert refused.returncode != 0
    assert "webapp:image.tag" in refused.output
    assert plane.kubectl("get", "all,cm,secret,ingress,netpol", "-n", namespace, "-o", "name").stdout == before
    assert _deployment(plane, namespace)["spec"]["replicas"] == 1
    ws.run("pulumi destroy --yes")


def test_a_cluster_lacking_what_a_stack_needs_fails_preview_and_up_naming_each_piece_before_creating_anything(
    plane: ControlPlane, tmp_path: Path
) -> None:
    """Each prerequisite missing at once (an IngressClass, a TLS Secret, a CRD; a Gateway for dev): `preview` and
    `up` fail naming each with how to provide it, and nothing exists in the namespace afterwards."""
    namespace = "webapp-lacking"
    plane.kubectl("create", "namespace", namespace)
    prod = _cluster_workspace(plane, tmp_path / "prod", "prod")
    _set_secrets(prod, "prod")
    for setting in (f"namespace {namespace}", "createNamespace false", "ingress.className absent-class"):
        key, value = setting.split()
        prod.run(f"pulumi config set --path 'webapp:{key}' {value}")
    rule_crd = "prometheusrules.monitoring.coreos.com"
    plane.kubectl("delete", "crd", rule_crd)
    try:
        for command in ("pulumi preview", "pulumi up --yes"):
            refused = prod.run(command, check=False)
            assert refused.returncode != 0
            for piece in (
                "IngressClass absent-class (needed by webapp:ingress.className)",
                f"TLS Secret {namespace}/webapp-example-com-tls (needed by webapp:ingress.tls[0].secretName)",
                f"CustomResourceDefinition {rule_crd} (needed by webapp:metrics.alerts)",
            ):
                assert piece in refused.output, refused.output[-3000:]
            assert "lacks 3 thing(s)" in refused.output
    finally:
        plane.install_crds()
    _assert_nothing_created(prod)
    # Workspaces share the CLI's login, so dev's comes after prod is done with its backend.
    dev = _cluster_workspace(plane, tmp_path / "dev", "dev")
    _set_secrets(dev, "dev")
    dev.run("pulumi config set --path 'webapp:httpRoute.gateway.name' absent")
    for command in ("pulumi preview", "pulumi up --yes"):
        refused = dev.run(command, check=False)
        assert refused.returncode != 0
        assert "Gateway gateway/absent (needed by webapp:httpRoute.gateway): ask the platform team" in refused.output
    _assert_nothing_created(dev)
    assert plane.kubectl("get", "all,cm,secret,ingress,netpol,sa", "-n", namespace, "-o", "name").stdout.split() == [
        "configmap/kube-root-ca.crt",
        "serviceaccount/default",
    ]


def _assert_nothing_created(ws: Workspace) -> None:
    resources = ws.run("pulumi stack export").json()["deployment"].get("resources") or []
    assert [r["type"] for r in resources if r["type"] != "pulumi:pulumi:Stack"] == [], resources


def _promote(ws: Workspace, directory: Path, target: str, *, image: str = "", source: str = "") -> tuple[int, str, str]:
    """pulumi-up.yml's own promotion step for `target`, run as a runner runs it in the workspace (the checkout's
    tools on PYTHONPATH, the built CLI on PATH): its exit code, its output, and the image it handed the next step."""
    environment = {**ws.environment(), "PYTHONPATH": str(REPO_ROOT)}
    runner = promotion_job(target, directory / f"promote-{target}", environment, image=image, source=source)
    result = runner.run(PROMOTE_STEP, ws.root)
    outputs = dict(line.partition("=")[::2] for line in (runner.directory / "output").read_text().splitlines())
    return result.returncode, result.output, outputs.get("image", "")


def test_one_digest_travels_from_the_build_through_dev_and_staging_to_prod(plane: ControlPlane, tmp_path: Path) -> None:
    """The deploy workflow's path, on one backend: the build's digest to dev, then each stage's to the next."""
    ws = _cluster_workspace(plane, tmp_path, "dev")
    ws.label = "cluster promotion"
    for stack in ("dev", "staging", "prod"):
        ws.run(f"pulumi stack select --create {stack}")
        ws.run(f"pulumi config set webapp:namespace promote-{stack}")
        _set_secrets(ws, stack)
        _skip_awaits_no_controller_ends(ws, stack)

    # The workflow names stacks organization/stack (vars.PULUMI_ORG); the file backend's organization is that.
    returncode, output, _ = _promote(ws, tmp_path, "prod", source="staging")
    assert returncode == 1
    assert "stack organization/staging has never been deployed" in output

    built = "ghcr.io/example/webapp:sha-860c190@sha256:" + "e" * 64
    returncode, output, handed_on = _promote(ws, tmp_path, "dev", image=built)
    assert (returncode, handed_on) == (0, built), output
    ws.run("pulumi up --yes --stack dev")
    for source, target in (("dev", "staging"), ("staging", "prod")):
        returncode, output, handed_on = _promote(ws, tmp_path, target, source=source)
        assert (returncode, handed_on) == (0, built), output
        assert f"organization/{target} now runs {built} (from stack organization/{source})" in output
        ws.run(f"pulumi up --yes --stack {target}")

    for stack in ("dev", "staging", "prod"):
        (container,) = _deployment(plane, f"promote-{stack}")["spec"]["template"]["spec"]["containers"]
        assert container["image"] == built, stack
    assert "digest: sha256:" + "e" * 64 in (ws.root / "Pulumi.prod.yaml").read_text(), "the stack file records it"

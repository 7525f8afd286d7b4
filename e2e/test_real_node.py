"""The app's real image on a real node: kubelet probes, the container as shipped, rollouts under load.

Runs inside network and mount namespaces of its own (`e2e/in-namespaces`, as
`make e2e` starts it): a control plane on that namespace's loopback, one real
node (containerd, runc, CNI bridge, kubelet, kube-proxy; e2e/node.py), and the
registry `make image` pushed to, serving the same storage with the same login.
The stacks run the image by the digest the push printed, pulled with a
`kubernetes.io/dockerconfigjson` Secret through the `imagePullSecrets` setting.
The real CLI and provider do every `pulumi up`; no render mode, no kwok.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import ControlPlane, running_control_plane
from e2e.engine import TIMINGS, Workspace
from e2e.image import LOGIN_FILE, STORAGE, BuiltImage
from e2e.load import LoadClient, LoadReport
from e2e.node import NODE_NAME, Node, in_private_namespaces, running_node
from e2e.registry import Login, Registry, running_registry
from e2e.stacks import SECRET_VALUE, expected_replicas, stack_file

PULL_SECRET = "registry-login"
REGISTRY_PORT = 5000
# Nothing fills in an Ingress's address without an ingress controller; the provider would wait for one.
SKIP_INGRESS_AWAIT = "pulumi config set --path 'webapp:ingress.annotations[\"pulumi.com/skipAwait\"]' true"
# What runs inside the app's container to report how it runs: uid, gid, capabilities, what it can write.
INSIDE_PROBE = """
import json, os
def writable(path):
    try:
        with open(os.path.join(path, ".e2e-write-check"), "w") as handle:
            handle.write("x")
        os.remove(os.path.join(path, ".e2e-write-check"))
        return True
    except OSError:
        return False
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "cap_eff": status["CapEff"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(), "seccomp": status["Seccomp"].strip(),
    "writable": {path: writable(path) for path in ("/", "/srv", "/srv/app", "/etc", "/tmp")},
}))
"""


@dataclass
class RealCluster:
    """The control plane, its real node and the registry, for the module."""

    plane: ControlPlane
    node: Node
    registry: Registry
    image: BuiltImage


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """Everything started inside this process's namespaces; stopped, with the node cleaned up, at the end."""
    in_private_namespaces()
    image = BuiltImage.load()
    base = tmp_path_factory.mktemp("real-node")
    login = Login.load_or_create(LOGIN_FILE)
    with (
        running_registry(base / "registry", STORAGE, login, port=REGISTRY_PORT) as registry,
        running_control_plane(base / "cluster", with_kwok=False) as plane,
        running_node(base / "node", plane, registry.host) as node,
    ):
        TIMINGS.append(("real node", "start: containerd, kubelet, kube-proxy until Ready", node.started_in))
        yield RealCluster(plane, node, registry, image)


def _prepare_namespace(real: RealCluster, namespace: str, *, pull_secret: bool = True) -> None:
    """The namespace as a platform team hands it over: Pod Security `restricted`, and the registry's pull Secret."""
    plane = real.plane
    plane.kubectl("create", "namespace", namespace)
    plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    if pull_secret:
        config = json.dumps(real.registry.login.docker_config(real.registry.host))
        plane.kubectl(
            "create",
            "secret",
            "docker-registry",
            PULL_SECRET,
            "-n",
            namespace,
            "--from-file=.dockerconfigjson=/dev/stdin",
            stdin=config,
        )


def _workspace(real: RealCluster, tmp_path: Path, stack: str, **settings: str) -> Workspace:
    """A workspace for `stack` on this cluster: the built image by digest, its pull Secret, the namespace given."""
    ws = Workspace.create(tmp_path)
    ws.label = f"real node {stack}"
    ws.extra_env["KUBECONFIG"] = str(real.plane.kubeconfig)
    ws.login()
    ws.run(f"pulumi stack select --create {stack}")
    image = real.image
    ws.run(f"pulumi config set --path 'webapp:image.repository' '{real.registry.host}/{image.repository}'")
    ws.run(f"pulumi config set --path 'webapp:image.tag' '{image.tag}'")
    ws.run(f"pulumi config set --path 'webapp:image.digest' '{image.digest}'")
    ws.run(f"pulumi config set --path 'webapp:imagePullSecrets[0]' {PULL_SECRET}")
    ws.run("pulumi config set webapp:createNamespace false")
    for name in stack_file(stack).get("webapp:secretKeys", []):
        ws.run(f"pulumi config set --secret --path 'webapp:secrets.{name}' '{SECRET_VALUE}'")
    if stack_file(stack).get("webapp:ingress", {}).get("enabled"):
        ws.run(SKIP_INGRESS_AWAIT)
    for key, value in settings.items():
        ws.run(f"pulumi config set --path 'webapp:{key}' '{value}'")
    return ws


def _pods(real: RealCluster, namespace: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = real.plane.kubectl_json("get", "pods", "-n", namespace)["items"]
    return pods


def _service_address(real: RealCluster, namespace: str) -> tuple[str, int]:
    (service,) = [
        s
        for s in real.plane.kubectl_json("get", "services", "-n", namespace)["items"]
        if s["spec"].get("type") == "ClusterIP" and s["spec"].get("clusterIP") not in (None, "None")
    ]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    return service["spec"]["clusterIP"], int(port)


def _inside(real: RealCluster, namespace: str, pod: str) -> dict[str, Any]:
    """What the running container reports about itself (kubectl exec through the kubelet)."""
    result = real.plane.kubectl("exec", "-n", namespace, pod, "--", "python", "-c", INSIDE_PROBE)
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _get(host: str, port: int, path: str) -> tuple[int, bytes]:
    import http.client

    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_dev_runs_the_built_image_as_shipped(cluster: RealCluster, tmp_path: Path) -> None:
    stack, namespace = "dev", "webapp-dev"
    _prepare_namespace(cluster, namespace)
    ws = _workspace(cluster, tmp_path, stack)
    started = time.monotonic()
    ws.run("pulumi up --yes")
    TIMINGS.append((ws.label, "pulumi up until the pods are Ready (kubelet probes)", time.monotonic() - started))

    pods = [p for p in _pods(cluster, namespace) if p["status"].get("phase") == "Running"]
    assert len(pods) == expected_replicas(stack_file(stack))
    for pod in pods:
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] is True
        assert status["imageID"].endswith(cluster.image.digest), status["imageID"]
        assert pod["spec"]["nodeName"] == NODE_NAME
        inside = _inside(cluster, namespace, pod["metadata"]["name"])
        assert (inside["uid"], inside["gid"]) == (10001, 10001)
        assert int(inside["cap_eff"], 16) == 0, inside
        assert inside["no_new_privs"] == "1"
        assert inside["seccomp"] == "2", "seccomp filter mode (RuntimeDefault)"
        assert inside["writable"] == {"/": False, "/srv": False, "/srv/app": False, "/etc": False, "/tmp": True}
        # The management port answers on the pod's own address: readiness and /metrics.
        pod_ip = pod["status"]["podIP"]
        assert _get(pod_ip, 8081, "/ready")[0] == 200
        status_code, metrics = _get(pod_ip, 8081, "/metrics")
        assert status_code == 200
        assert b"# TYPE" in metrics

    host, port = _service_address(cluster, namespace)
    status_code, body = _get(host, port, "/")
    assert status_code == 200
    answer = json.loads(body)
    assert answer["version"] == cluster.image.tag
    assert answer["database_password_configured"] is True

    ws.run("pulumi destroy --yes")


def test_a_stack_without_the_pull_secret_cannot_pull_the_image(cluster: RealCluster, tmp_path: Path) -> None:
    namespace = "webapp-nopull"
    _prepare_namespace(cluster, namespace, pull_secret=False)
    ws = _workspace(cluster, tmp_path, "dev", namespace=namespace)
    ws.run("pulumi config rm --path 'webapp:imagePullSecrets'")
    ws.run("pulumi config set --path 'webapp:rolloutTimeoutSeconds' 60")

    def pull_refused() -> bool:
        for pod in _pods(cluster, namespace):
            for status in pod["status"].get("containerStatuses", []):
                waiting = status.get("state", {}).get("waiting", {})
                if waiting.get("reason") in {"ErrImagePull", "ImagePullBackOff"}:
                    return "401" in waiting.get("message", "") or "nauthorized" in waiting.get("message", "")
        return False

    up = ws.run("pulumi up --yes", check=False)
    assert up.returncode != 0
    assert pull_refused(), [p["status"] for p in _pods(cluster, namespace)]


def _rollout_under_load(
    cluster: RealCluster, tmp_path: Path, stack: str, *, drain_seconds: int
) -> tuple[LoadReport, float]:
    namespace = f"webapp-{stack}-roll-{drain_seconds}"
    _prepare_namespace(cluster, namespace)
    ws = _workspace(cluster, tmp_path, stack, namespace=namespace, drainSeconds=str(drain_seconds))
    ws.run("pulumi up --yes")
    host, port = _service_address(cluster, namespace)
    ws.run("pulumi config set --path 'webapp:appConfig.GREETING' 'Rolled by the e2e'")
    with LoadClient(host, port) as load:
        time.sleep(1)
        started = time.monotonic()
        ws.run("pulumi up --yes")
        seconds = time.monotonic() - started
        time.sleep(1)
    TIMINGS.append((ws.label, f"rollout under load, drain {drain_seconds} s: {load.report.total} requests", seconds))
    ws.run("pulumi destroy --yes")
    return load.report, seconds


def test_staging_rolls_a_config_change_under_load_without_failing_a_request(
    cluster: RealCluster, tmp_path: Path
) -> None:
    report, _ = _rollout_under_load(cluster, tmp_path, "staging", drain_seconds=5)
    assert report.failures == [], f"{len(report.failures)} of {report.total} failed: {report.failures[:10]}"
    assert report.greetings["Rolled by the e2e"] > 0, report.greetings
    assert len(report.greetings) == 2, report.greetings


def test_the_same_rollout_without_the_drain_fails_requests(cluster: RealCluster, tmp_path: Path) -> None:
    report, _ = _rollout_under_load(cluster, tmp_path, "staging", drain_seconds=0)
    assert report.failures, f"no request failed in {report.total}: the zero-failure test could not fail"

"""The app's real image on a real node: kubelet probes, the container as shipped, rollouts under load.

Runs inside network and mount namespaces of its own (`e2e/in-namespaces`, as
`make e2e` starts it): a control plane on that namespace's loopback, one real
node (containerd, runc, CNI bridge, kubelet, kube-proxy; localcluster/node.py), and the
registry `make image` pushed to, serving the same storage with the same login.
The stacks run the image by the digest the push printed, pulled with a
`kubernetes.io/dockerconfigjson` Secret through the `imagePullSecrets` setting.
The real CLI and provider do every `pulumi up`; no render mode, no kwok.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from app.views import MAX_BLOCK_SECONDS
from e2e.real_cluster import RealCluster
from e2e.stacks import expected_replicas, stack_file
from harness.clients import read_until_closed
from harness.http import get
from harness.processes import wait_until
from localcluster.load import LoadClient, LoadReport
from localcluster.node import (
    INGRESS_HTTP_PORT,
    INGRESS_HTTPS_PORT,
    NODE_IP,
    NODE_NAME,
)
from localcluster.platform import ImageReference, public_hosts, set_image
from localcluster.pulumi_cli import TIMINGS, Workspace
from tools.stack_config import stack_names

WRITABLE = ("/", "/srv", "/srv/app", "/etc", "/tmp")


@pytest.fixture(scope="module")
def cluster(real_cluster: RealCluster) -> RealCluster:
    """The run's real cluster (e2e/real_cluster.py), shared with the other real-node modules."""
    return real_cluster


def _prepare_namespace(real: RealCluster, stack: str, namespace: str, *, pull_secret: bool = True) -> None:
    real.prepare_namespace(stack, namespace, pull_secret=pull_secret)


def _image(real: RealCluster, tag: str, digest: str) -> ImageReference:
    return real.image_reference(tag, digest)


def _workspace(real: RealCluster, tmp_path: Path, stack: str, **settings: str) -> Workspace:
    return real.workspace(tmp_path, stack, **settings)


def _set_image(ws: Workspace, real: RealCluster, tag: str, digest: str) -> None:
    set_image(ws, _image(real, tag, digest))


def _up(ws: Workspace, what: str) -> float:
    started = time.monotonic()
    ws.run("pulumi up --yes")
    seconds = time.monotonic() - started
    TIMINGS.append((ws.label, what, seconds))
    return seconds


def _pods(real: RealCluster, namespace: str) -> list[dict[str, Any]]:
    return real.pods(namespace)


def _service_address(real: RealCluster, namespace: str) -> tuple[str, int]:
    services = real.plane.kubectl_json("get", "services", "-n", namespace)["items"]
    (service,) = [s for s in services if s["spec"].get("clusterIP") not in (None, "None")]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    return service["spec"]["clusterIP"], int(port)


def _get_tls(real: RealCluster, host_name: str, path: str) -> tuple[int, bytes]:
    """GET over HTTPS through the ingress controller, with SNI and the certificate checked against the e2e's CA."""
    context = ssl.create_default_context(cafile=str(real.plane.pki.ca_cert))
    with (
        socket.create_connection((NODE_IP, INGRESS_HTTPS_PORT), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host_name) as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_name}\r\nConnection: close\r\n\r\n".encode())
        head, _, body = read_until_closed(tls).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _check_pods_as_shipped(real: RealCluster, stack: str, namespace: str) -> None:
    """Ready by the kubelet's probes, the pushed digest, uid 10001, no capabilities, only /tmp writable, /metrics."""
    pods = [p for p in _pods(real, namespace) if p["status"].get("phase") == "Running"]
    assert len(pods) == expected_replicas(stack_file(stack)), [p["status"] for p in _pods(real, namespace)]
    TIMINGS.append((f"real node {stack}", "slowest pod, created to Ready (1 s resolution)", _slowest_start(pods)))
    for pod in pods:
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] is True
        assert status["imageID"].endswith(real.image.digest), status["imageID"]
        assert pod["spec"]["nodeName"] == NODE_NAME
        inside = real.inside(namespace, pod["metadata"]["name"], WRITABLE)
        assert (inside["uid"], inside["gid"]) == (10001, 10001)
        assert int(inside["cap_eff"], 16) == 0, inside
        assert inside["no_new_privs"] == "1"
        assert inside["seccomp"] == "2", "seccomp in filter mode (RuntimeDefault)"
        assert inside["writable"] == {"/": False, "/srv": False, "/srv/app": False, "/etc": False, "/tmp": True}
        pod_ip = pod["status"]["podIP"]
        ready = get(8081, "/ready", 5, host=pod_ip)
        assert ready.status == 200, ready
        metrics = get(8081, "/metrics", 5, host=pod_ip)
        assert metrics.status == 200, metrics
        assert b"# TYPE" in metrics.body


def _timestamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _slowest_start(pods: list[dict[str, Any]]) -> float:
    """Seconds from a pod's creation to its Ready condition, for the slowest of `pods` (as the API reports them)."""
    return max(
        _timestamp(next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["lastTransitionTime"])
        - _timestamp(pod["metadata"]["creationTimestamp"])
        for pod in pods
    )


def _check_routes(real: RealCluster, stack: str, namespace: str) -> None:
    """The app answers through the Service (kube-proxy) and through the Ingress (Traefik, Host rule, TLS if set)."""
    host, port = _service_address(real, namespace)
    index = get(port, "/", 5, host=host)
    assert index.status == 200, index
    answer = json.loads(index.body)
    assert answer["version"] == real.image.tag
    assert answer["database_password_configured"] is True
    file = stack_file(stack)
    if file.get("webapp:httpRoute", {}).get("enabled"):
        _check_route_accepted(real, namespace)
    for host_name in public_hosts(stack):
        # Traefik may serve a new route a moment after it has written the route's status.
        wait_until(f"{host_name} routed by Traefik", functools.partial(_routed, host_name), 30)
    assert get(INGRESS_HTTP_PORT, "/", 5, host=NODE_IP, host_header="not-this-host.example.com").status == 404
    for entry in file.get("webapp:ingress", {}).get("tls", []):
        for host_name in entry["hosts"]:
            status_code, body = _get_tls(real, host_name, "/")
            assert status_code == 200, host_name
            assert json.loads(body)["version"] == real.image.tag


def _routed(host_name: str) -> bool:
    """Whether Traefik's HTTP entry point sends `host_name` to a pod that answers 200."""
    return get(INGRESS_HTTP_PORT, "/", 5, host=NODE_IP, host_header=host_name).status == 200


def _check_route_accepted(real: RealCluster, namespace: str) -> None:
    """Traefik has accepted the stack's HTTPRoute on the shared Gateway's listener and resolved its Service, by the
    time `pulumi up` returned (the provider awaits both conditions)."""
    [route] = real.plane.kubectl_json("get", "httproutes", "-n", namespace)["items"]
    parents = route.get("status", {}).get("parents", [])
    conditions = {c["type"]: c["status"] for parent in parents for c in parent.get("conditions", [])}
    assert conditions.get("Accepted") == "True", conditions
    assert conditions.get("ResolvedRefs") == "True", conditions


@pytest.mark.parametrize("stack", stack_names())
def test_every_stack_runs_the_built_image_as_shipped(stack: str, cluster: RealCluster, tmp_path: Path) -> None:
    namespace = stack_file(stack)["webapp:namespace"]
    _prepare_namespace(cluster, stack, namespace)
    ws = _workspace(cluster, tmp_path, stack)
    _up(ws, "pulumi up until the pods are Ready by the kubelet's probes")
    _check_pods_as_shipped(cluster, stack, namespace)
    _check_routes(cluster, stack, namespace)
    ws.run("pulumi destroy --yes")


def test_a_stack_without_the_pull_secret_cannot_pull_the_image(cluster: RealCluster, tmp_path: Path) -> None:
    namespace = "webapp-no-pull-secret"
    _prepare_namespace(cluster, "dev", namespace, pull_secret=False)
    ws = _workspace(cluster, tmp_path, "dev", namespace=namespace, rolloutTimeoutSeconds="30")
    ws.run("pulumi config rm --path 'webapp:imagePullSecrets'")
    up = ws.run("pulumi up --yes", check=False)
    assert up.returncode != 0
    waiting = [
        status.get("state", {}).get("waiting", {})
        for pod in _pods(cluster, namespace)
        for status in pod["status"].get("containerStatuses", [])
    ]
    assert any(w.get("reason") in {"ErrImagePull", "ImagePullBackOff"} for w in waiting), waiting
    assert any("no basic auth credentials" in w.get("message", "") for w in waiting), waiting
    assert "ErrImagePull" in up.output or "ImagePullBackOff" in up.output, up.output[-3000:]


def _under_load(stack: str) -> LoadClient:
    """Load through the Ingress (Traefik, by the stack's Host rule), on keep-alive and fresh connections."""
    return LoadClient(NODE_IP, INGRESS_HTTP_PORT, host_header=public_hosts(stack)[0])


def _rollout(real: RealCluster, tmp_path: Path, *, drain_seconds: int) -> dict[str, LoadReport]:
    """staging up, then a config change and an image change, each rolled under load; returns each load's report."""
    stack = "staging"
    namespace = f"webapp-rollout-drain-{drain_seconds}"
    _prepare_namespace(real, stack, namespace)
    ws = _workspace(real, tmp_path, stack, namespace=namespace, drainSeconds=str(drain_seconds))
    _up(ws, "pulumi up")
    reports = {}
    for change in ("config", "image"):
        if change == "config":
            ws.run("pulumi config set --path 'webapp:appConfig.GREETING' 'Rolled by the e2e'")
        else:
            _set_image(ws, real, real.image.variant_tag, real.image.variant_digest)
        with _under_load(stack) as load:
            time.sleep(1)
            seconds = _up(ws, f"{change} change rolled under load (drain {drain_seconds} s)")
            time.sleep(2)
        TIMINGS.append((ws.label, f"  requests served during that rollout: {load.report.total}", seconds))
        reports[change] = load.report
    ws.run("pulumi destroy --yes")
    return reports


def test_staging_rolls_config_and_image_changes_under_load_without_failing_a_request(
    cluster: RealCluster, tmp_path: Path
) -> None:
    reports = _rollout(cluster, tmp_path, drain_seconds=5)
    for change, report in reports.items():
        assert report.failures == [], (
            f"{change}: {len(report.failures)} of {report.total} failed: {report.failures[:10]}"
        )
        assert len(report.answers) == 2, f"{change}: old and new pods should both have answered: {report.answers}"


def test_the_same_rollouts_without_the_drain_fail_requests(cluster: RealCluster, tmp_path: Path) -> None:
    reports = _rollout(cluster, tmp_path, drain_seconds=0)
    assert any(report.failures for report in reports.values()), (
        f"no request failed without the drain ({ {c: r.total for c, r in reports.items()} }): "
        "the zero-failure test above could not fail"
    )


def _waiting_reasons(real: RealCluster, namespace: str) -> set[str]:
    """Why containers of the namespace wait (ErrImagePull, CrashLoopBackOff...), as the kubelet reports it."""
    return {
        status["state"]["waiting"].get("reason", "")
        for pod in _pods(real, namespace)
        for status in pod["status"].get("containerStatuses", [])
        if "waiting" in status.get("state", {})
    }


def _rollout_state(cluster: RealCluster, namespace: str) -> str:
    """The Deployment's generations, revision and conditions, and each ReplicaSet's revision and replicas: what a
    rollout that `up` called finished can be checked against."""
    deployment = cluster.plane.kubectl_json("get", "deployment", "webapp", "-n", namespace)
    replica_sets = cluster.plane.kubectl_json("get", "replicasets", "-n", namespace)["items"]
    lines = [
        f"deployment generation {deployment['metadata']['generation']}, observed "
        f"{deployment['status'].get('observedGeneration')}, revision "
        f"{deployment['metadata'].get('annotations', {}).get('deployment.kubernetes.io/revision')}, conditions "
        f"{[(c['type'], c['status'], c.get('reason')) for c in deployment['status'].get('conditions', [])]}"
    ]
    lines += [
        f"replicaset {rs['metadata']['name']} revision "
        f"{rs['metadata'].get('annotations', {}).get('deployment.kubernetes.io/revision')}: "
        f"{rs['spec'].get('replicas')} wanted, {rs['status'].get('readyReplicas', 0)} ready"
        for rs in replica_sets
    ]
    return "\n".join(lines)


def test_bad_rollouts_fail_up_naming_the_cause_while_the_old_pods_keep_serving(
    cluster: RealCluster, tmp_path: Path
) -> None:
    """The two most common on-call failures: an image that does not exist, and an app that exits at start."""
    stack, namespace = "staging", "webapp-bad-rollouts"
    _prepare_namespace(cluster, stack, namespace)
    ws = _workspace(cluster, tmp_path, stack, namespace=namespace, rolloutTimeoutSeconds="30")
    _up(ws, "pulumi up")
    bad_rollouts = {
        # A digest nothing pushed.
        "missing image": ("image.digest", "sha256:" + "0" * 64, {"ErrImagePull", "ImagePullBackOff"}),
        # WEB_THREADS must be 1-256: the app refuses 0 at start with a JSON log line and exit 1.
        "exits at start": ("appConfig.WEB_THREADS", "0", {"CrashLoopBackOff"}),
    }
    for what, (key, value, reasons) in bad_rollouts.items():
        ws.run(f"pulumi config set --path 'webapp:{key}' '{value}'")
        with _under_load(stack) as load:
            started = time.monotonic()
            failed = ws.run("pulumi up --yes", check=False)
            TIMINGS.append((ws.label, f"bad rollout ({what}) until up failed", time.monotonic() - started))
            seen = _waiting_reasons(cluster, namespace)
        assert failed.returncode != 0, (
            f"{what}: up succeeded: {failed.output[-3000:]}\n{_rollout_state(cluster, namespace)}"
        )
        assert "timed out" in failed.output or "ProgressDeadlineExceeded" in failed.output, failed.output[-3000:]
        assert seen & reasons, f"{what}: containers wait for {seen}, expected one of {reasons}"
        assert any(reason in failed.output for reason in reasons), f"{what}: {failed.output[-3000:]}"
        assert load.report.failures == [], f"{what}: {load.report.failures[:10]} of {load.report.total}"
        assert load.report.ok > 0
        # The next good `up` recovers.
        _set_image(ws, cluster, cluster.image.tag, cluster.image.digest)
        ws.run("pulumi config rm --path 'webapp:appConfig.WEB_THREADS'", check=False)
        _up(ws, f"recovery after the bad rollout ({what})")
        deployment = cluster.plane.kubectl_json("get", "deployment", "webapp", "-n", namespace)
        assert deployment["status"].get("unavailableReplicas", 0) == 0
    ws.run("pulumi destroy --yes")


def test_a_deleted_pod_drains_under_load_and_exits_cleanly(cluster: RealCluster, tmp_path: Path) -> None:
    stack, namespace = "staging", "webapp-termination"
    _prepare_namespace(cluster, stack, namespace)
    ws = _workspace(cluster, tmp_path, stack, namespace=namespace)
    _up(ws, "pulumi up")
    victim = _pods(cluster, namespace)[0]["metadata"]["name"]
    with _under_load(stack) as load:
        time.sleep(1)
        # Follow the victim's log to its end: the container's last words, however it ends.
        follow = subprocess.Popen(
            [*cluster.plane.kubectl_command(), "logs", "-f", "-n", namespace, victim],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        started = time.monotonic()
        cluster.plane.kubectl("delete", "pod", victim, "-n", namespace, "--wait=true", "--timeout=120s")
        TIMINGS.append((ws.label, "pod delete until gone (drain, then in-flight requests)", time.monotonic() - started))
        log, _ = follow.communicate(timeout=30)
        time.sleep(2)
    assert load.report.failures == [], f"{load.report.failures[:10]} of {load.report.total}"
    events = {}
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("event") in {"draining", "stopping", "stopped"}:
                events[entry["event"]] = entry
    assert events.keys() == {"draining", "stopping", "stopped"}, log[-3000:]
    assert events["draining"]["signal"] == "SIGTERM"
    TIMINGS.append(
        (
            ws.label,
            "SIGTERM to stopped, from the pod's JSON log",
            _timestamp(events["stopped"]["time"]) - _timestamp(events["draining"]["time"]),
        )
    )
    ws.run("pulumi destroy --yes")


def _wedge(host: str, stop: threading.Event) -> None:
    """Keep one blocking test-route request in flight on `host` until `stop`; each is released by the route's cap."""
    while not stop.is_set():
        connection = http.client.HTTPConnection(host, 8080, timeout=MAX_BLOCK_SECONDS + 15)
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection.request("GET", f"/debug/block?release=never-{threading.get_ident()}")
            connection.getresponse().read()
        connection.close()


def test_a_pod_with_every_thread_wedged_is_restarted_by_its_liveness_probe(
    cluster: RealCluster, tmp_path: Path
) -> None:
    """A test stack (staging with the test routes on, one worker of two threads, a 1 s stall limit)."""
    stack, namespace = "staging", "webapp-liveness"
    _prepare_namespace(cluster, stack, namespace)
    ws = _workspace(
        cluster,
        tmp_path,
        stack,
        namespace=namespace,
        stallSeconds="1",
        enableTestRoutes="true",
        **{"appConfig.WEB_CONCURRENCY": "1", "appConfig.WEB_THREADS": "2"},
    )
    _up(ws, "pulumi up")
    victim, other = _pods(cluster, namespace)[:2]
    victim_ip, other_ip = victim["status"]["podIP"], other["status"]["podIP"]
    stop = threading.Event()
    # More requests than threads, always: the worker never has a free thread, and finishes nothing before the
    # route's own cap, longer than the liveness window (a request finished at the cap would count as progress: with
    # a 30 s cap, 3 x the 10 s probe period, a probe could land in the same healthy second every cycle).
    wedgers = [threading.Thread(target=_wedge, args=(victim_ip, stop), daemon=True) for _ in range(4)]
    for wedger in wedgers:
        wedger.start()
    try:
        wait_until("/healthz 503 stalled", lambda: get(8081, "/healthz", 5, host=victim_ip).status == 503, 30)
        started = time.monotonic()

        def restarted() -> bool:
            pod = cluster.plane.kubectl_json("get", "pod", victim["metadata"]["name"], "-n", namespace)
            return int(pod["status"]["containerStatuses"][0]["restartCount"]) >= 1

        wait_until("the kubelet restarts the wedged container", restarted, 150, lambda: str(_pods(cluster, namespace)))
        TIMINGS.append(
            (ws.label, "stalled /healthz until the kubelet restarted the container", time.monotonic() - started)
        )
        assert get(8080, "/", 5, host=other_ip).status == 200
    finally:
        stop.set()
    ws.run("pulumi destroy --yes")

"""Canary releases for real: tools/canary.py drives the real engine through the Automation API on the real node,
with requests through the HTTPRoute (Traefik's Gateway) the whole time and a real Prometheus judging the canary.

The test stack is dev (one pod, an HTTPRoute) with a ServiceMonitor scraped every second and the canary's steps and
analysis scaled to seconds through its own settings (two steps, 20 % and 50 %, 6 s each, one check every 3 s).
Prometheus follows the namespace as the operator would (`localcluster.prometheus.following`): the canary's
ServiceMonitor is scraped from the moment it exists. The bad releases are real images or config built for the test
(e2e/releases/): one failing every fifth request, the same image answering every request in 0.8 s, and a ConfigMap
value the app refuses at start.

Runs in the same process, namespaces and cluster as e2e/test_real_node.py (`make e2e`: e2e/real_cluster.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.real_cluster import RealCluster
from harness.processes import wait_until
from localcluster.load import LoadClient, LoadReport
from localcluster.node import INGRESS_HTTP_PORT, NODE_IP
from localcluster.prometheus import Prometheus, following
from localcluster.pulumi_cli import TIMINGS, CommandResult, Workspace
from tools.stack_config import REPO_ROOT

STACK, NAMESPACE = "dev", "webapp-canary-e2e"
HOST = "canary.dev.example.com"
STEPS = ((20, 6), (50, 6))
SETTINGS = {
    "httpRoute.hostnames[0]": HOST,
    "metrics.serviceMonitor": "true",
    "metrics.interval": "1s",
    "rolloutTimeoutSeconds": "30",
    "canary.enabled": "true",
    **{f"canary.steps[{i}].weight": str(weight) for i, (weight, _) in enumerate(STEPS)},
    **{f"canary.steps[{i}].seconds": str(seconds) for i, (_, seconds) in enumerate(STEPS)},
    "canary.analysis.intervalSeconds": "3",
    "canary.analysis.minRequests": "10",
}
STABLE = "webapp"
CANARY_SUFFIX = "-canary"
CANARY_KINDS = (
    "deployments",
    "services",
    "configmaps",
    "networkpolicies",
    "poddisruptionbudgets",
    "servicemonitors.monitoring.coreos.com",
)
"""Every kind of object a canary of this stack may create (webapp_platform/components/canary.py); pods aside."""
SHARE_TOLERANCE = 1.25
"""How far over its weight a release's measured share may be: the window counted starts and ends on one of its own
answers, which adds about two answers to a window of a hundred or so (a release at twice its weight still fails)."""
CLEAN_RELEASES = int(os.environ.get("CANARY_CLEAN_RELEASES", "3"))
"""How many clean releases in a row the last test promotes: three in CI; bench/canary_soak.py asks for more."""


@dataclass
class CanaryStack:
    """The deployed test stack, the Prometheus judging it, and how to run the driver on it."""

    real: RealCluster
    ws: Workspace
    prometheus: Prometheus

    def command(self, *args: str) -> list[str]:
        """`python -m tools.canary` on this stack, with this Prometheus."""
        return [
            str(REPO_ROOT / ".venv" / "bin" / "python"),
            "-m",
            "tools.canary",
            "--stack",
            STACK,
            "--prometheus",
            f"http://127.0.0.1:{self.prometheus.port}",
            "--work-dir",
            str(self.ws.root),
            *args,
        ]

    def release(self, label: str, *args: str) -> CommandResult:
        """Run the driver to its end; its exit code is the test's to judge."""
        return self.ws.run_python_module(f"canary: {label}", *self.command(*args)[2:], check=False)

    def image(self, tag: str, digest: str) -> str:
        """A release's `--image`: the built image in the cluster's registry, by digest."""
        reference = self.real.image_reference(tag, digest)
        return f"{reference.repository}:{reference.tag}@{reference.digest}"

    def stable_pods(self) -> dict[str, int]:
        """The stable pods' names and restart counts."""
        return {
            pod["metadata"]["name"]: sum(s.get("restartCount", 0) for s in pod["status"].get("containerStatuses", []))
            for pod in self.real.pods(NAMESPACE)
            if pod["metadata"]["labels"].get("track") != "canary" and not pod["metadata"].get("deletionTimestamp")
        }

    def deployments(self) -> set[str]:
        """The Deployments in the namespace."""
        items = self.real.plane.kubectl_json("get", "deployments", "-n", NAMESPACE)["items"]
        return {item["metadata"]["name"] for item in items}

    def stack_file(self) -> str:
        """The workspace's stack file, as the driver left it."""
        return (self.ws.root / f"Pulumi.{STACK}.yaml").read_text()

    def pending_operations(self) -> list[dict[str, Any]]:
        """The operations the stack's last checkpoint in the file backend records as under way."""
        states = sorted(self.ws.backend.glob(f".pulumi/stacks/**/{STACK}.json"))
        assert len(states) == 1, f"expected one state file of {STACK} in {self.ws.backend}: {states}"
        try:
            checkpoint = json.loads(states[0].read_text())["checkpoint"]
        except json.JSONDecodeError:  # read while the engine replaced it: nothing learnt this time
            return []
        pending: list[dict[str, Any]] = (checkpoint.get("latest") or {}).get("pending_operations") or []
        return pending

    def locks(self) -> list[Path]:
        """The update locks the file backend holds for the stack."""
        return sorted(self.ws.backend.glob(".pulumi/locks/**/*.json"))

    def canary_objects(self) -> list[str]:
        """Every object of the kinds a canary creates that is still in the namespace and is the canary's (its
        `track: canary` label, or its name), as `kind/name`."""
        return [
            f"{kind}/{item['metadata']['name']}"
            for kind in CANARY_KINDS
            for item in self.real.plane.kubectl_json("get", kind, "-n", NAMESPACE)["items"]
            if item["metadata"].get("labels", {}).get("track") == "canary"
            or item["metadata"]["name"].startswith(f"{STABLE}{CANARY_SUFFIX}")
        ]

    def route_backends(self) -> list[tuple[str, int]]:
        """The HTTPRoute's backends, as (Service, weight), over all its rules."""
        (route,) = self.real.plane.kubectl_json("get", "httproutes.gateway.networking.k8s.io", "-n", NAMESPACE)["items"]
        return [
            (backend["name"], backend.get("weight", 1))
            for rule in route["spec"]["rules"]
            for backend in rule["backendRefs"]
        ]

    def assert_at_stable_version(self, stable_pods: dict[str, int], stack_file: str) -> None:
        """A rolled-back release left nothing behind: the stable pods untouched, no canary object, the route on the
        stable Service alone, the stack file as it was, and the Pulumi state matching it."""
        assert stable_pods, "no stable pods were recorded before the release"
        assert self.stable_pods() == stable_pods
        assert self.deployments() == {STABLE}
        assert self.canary_objects() == []
        assert {service for service, _ in self.route_backends()} == {STABLE}, self.route_backends()
        assert self.stack_file() == stack_file
        self.ws.run("pulumi preview --expect-no-changes")


@pytest.fixture(scope="module")
def canary(
    real_cluster: RealCluster, prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CanaryStack]:
    """The test stack deployed at the built image, with Prometheus following its namespace."""
    real = real_cluster
    real.prepare_namespace(STACK, NAMESPACE)
    ws = real.workspace(tmp_path_factory.mktemp("canary"), STACK, namespace=NAMESPACE, **SETTINGS)
    ws.label = "canary"
    ws.run("pulumi up --yes")

    def list_objects(kind: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = real.plane.kubectl_json("get", kind, "-n", NAMESPACE)["items"]
        return items

    with following(prometheus, list_objects, real.plane.kubeconfig):
        yield CanaryStack(real, ws, prometheus)
    ws.run("pulumi destroy --yes")


def _load() -> LoadClient:
    return LoadClient(NODE_IP, INGRESS_HTTP_PORT, host_header=HOST)


def _share(report: LoadReport, tag: str) -> float:
    """The share of the requests answered while the release tagged `tag` was live (from its first answer to its
    last) that it answered, its 200s and its 500s: the stable-only time before its pods were Ready and after the
    rollback does not dilute it."""
    mine = [outcome.endswith(f" {tag}") or "HTTP 500" in outcome for outcome in report.timeline]
    if not any(mine):
        return 0.0
    first, last = mine.index(True), len(mine) - 1 - mine[::-1].index(True)
    window = mine[first : last + 1]
    return sum(window) / len(window)


def test_a_good_release_killed_mid_update_is_shown_by_preview_then_resumed_and_promoted_without_a_failed_request(
    canary: CanaryStack,
) -> None:
    image = canary.real.image
    release = canary.image(image.variant_tag, image.variant_digest)
    with _load() as load:
        # Killed (SIGKILL, as a job past its cancellation's grace is) while its second step's update runs: the
        # update's lock and its pending operations are left behind, as in a killed CI job.
        with subprocess.Popen(
            canary.command("--image", release),
            cwd=canary.ws.root,
            env={**canary.ws.environment(language_host=False), "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        ) as process:
            assert process.stdout is not None
            seen = []
            for line in process.stdout:
                seen.append(line)
                if line.startswith("step 2/"):
                    # Killed only once the update is seen under way: its operations are in the checkpoint.
                    wait_until("step 2's update under way", lambda: bool(canary.pending_operations()), 60.0)
                    os.killpg(process.pid, signal.SIGKILL)
                    break
            process.wait(timeout=30)
        assert any(line.startswith("step 2/") for line in seen), "".join(seen)[-3000:]
        assert "webapp-canary" in canary.deployments()
        # The kill landed mid-update: the lock and the pending operations are left behind.
        left_pending = canary.pending_operations()
        assert left_pending, "the run was killed with no operation under way"
        assert canary.locks(), "the killed update left no lock"

        # A killed job's next run starts from a fresh checkout: the stack file without the driver's canaryRelease.
        canary.ws.run("pulumi config rm webapp:canaryRelease")
        preview = canary.ws.run("pulumi preview")
        assert "this stack is in a canary state" in preview.output, preview.output[-3000:]

        started = time.monotonic()
        resumed = canary.release("resume the interrupted release", "--image", release, "--cancel-stale-update")
        promotion = time.monotonic() - started
    assert resumed.returncode == 0, resumed.output[-4000:]
    assert "resuming the interrupted canary" in resumed.output
    # The recovery ran: the lock cancelled and the killed update's operations refreshed away.
    assert "cancelled any update a killed run left holding the stack's lock" in resumed.output, resumed.output[-3000:]
    assert f"clearing {len(left_pending)} operation(s)" in resumed.output, resumed.output[-3000:]
    assert canary.locks() == []
    assert canary.pending_operations() == []
    print(resumed.output[-3000:])
    assert "promoted" in resumed.output
    assert load.report.failures == [], load.report.failures[:10]
    assert canary.deployments() == {"webapp"}
    assert f"tag: {image.variant_tag}" in canary.stack_file()
    assert "canaryRelease" not in canary.stack_file()
    # The state matches the stack file: nothing left to change.
    canary.ws.run("pulumi preview --expect-no-changes")
    TIMINGS.append(("canary", f"good release resumed and promoted, {load.report.total} requests", promotion))


def test_a_release_failing_a_fifth_of_its_requests_is_rolled_back_having_served_no_more_than_its_weight(
    canary: CanaryStack,
) -> None:
    image = canary.real.image
    before, file_before = canary.stable_pods(), canary.stack_file()
    with _load() as load:
        started = time.monotonic()
        result = canary.release("failing release", "--image", canary.image(image.failing_tag, image.failing_digest))
        decided = time.monotonic() - started
    assert result.returncode == 1, result.output[-4000:]
    assert "availability:" in result.output, result.output[-3000:]
    assert "failed with a 5xx" in result.output
    # The release's share counted only while it was live: from its first answer to its last.
    share = _share(load.report, image.failing_tag)
    print(f"the failing release answered {share:.1%} of the requests sent while it was live (weight {STEPS[0][0]} %)")
    assert 0 < share <= STEPS[0][0] / 100 * SHARE_TOLERANCE
    assert all("HTTP 500" in failure for failure in load.report.failures), load.report.failures[:10]
    canary.assert_at_stable_version(before, file_before)
    TIMINGS.append(("canary", f"failing release rolled back, served {share:.1%} of {load.report.total}", decided))


def test_a_slow_release_is_rolled_back_on_the_latency_objective(canary: CanaryStack) -> None:
    image = canary.real.image
    before, file_before = canary.stable_pods(), canary.stack_file()
    with _load() as load:
        started = time.monotonic()
        result = canary.release(
            "slow release",
            "--image",
            canary.image(image.failing_tag, image.failing_digest),
            "--config",
            "RELEASE_FAULT=slow",
        )
        decided = time.monotonic() - started
    assert result.returncode == 1, result.output[-4000:]
    assert "latency:" in result.output, result.output[-3000:]
    assert "took longer than 0.5 s" in result.output
    assert load.report.failures == [], load.report.failures[:10]
    canary.assert_at_stable_version(before, file_before)
    TIMINGS.append(("canary", "slow release rolled back", decided))


def test_a_release_with_a_config_value_the_app_refuses_is_rolled_back_and_the_stable_pods_never_restart(
    canary: CanaryStack,
) -> None:
    before = canary.stable_pods()
    file_before = canary.stack_file()
    with _load() as load:
        result = canary.release("bad config", "--image", _stable_image(canary), "--config", "LOG_LEVEL=verbose")
    assert result.returncode == 1, result.output[-4000:]
    assert "step 1's update failed" in result.output, result.output[-3000:]
    assert load.report.failures == [], load.report.failures[:10]
    canary.assert_at_stable_version(before, file_before)


def test_clean_releases_are_never_rolled_back(canary: CanaryStack) -> None:
    image = canary.real.image
    images = [(image.tag, image.digest), (image.variant_tag, image.variant_digest)]
    # One step of one check per release: what is tested here is the analysis's verdict on a healthy release,
    # several times over, not the steps (the tests above take each release through both).
    canary.ws.run("pulumi config rm --path 'webapp:canary.steps[1]'")
    canary.ws.run("pulumi config set --path 'webapp:canary.steps[0].weight' 50")
    canary.ws.run("pulumi config set --path 'webapp:canary.steps[0].seconds' 3")
    with _load() as load:
        for number in range(CLEAN_RELEASES):
            tag, digest = images[number % 2]
            started = time.monotonic()
            result = canary.release(
                f"clean release {number + 1}",
                "--image",
                canary.image(tag, digest),
                "--config",
                f"GREETING=Release {number + 1}",
            )
            assert result.returncode == 0, result.output[-4000:]
            TIMINGS.append(("canary", f"clean release {number + 1} promoted", time.monotonic() - started))
    assert load.report.failures == [], load.report.failures[:10]
    assert f"Release {CLEAN_RELEASES}" in canary.stack_file()


def _stable_image(canary: CanaryStack) -> str:
    (deployment,) = [
        d
        for d in canary.real.plane.kubectl_json("get", "deployments", "-n", NAMESPACE)["items"]
        if d["metadata"]["name"] == "webapp"
    ]
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image

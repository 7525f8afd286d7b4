"""The stack's monitoring, evaluated for real: a Prometheus built from its Go module scrapes the pods on the real
node the way the stack's ServiceMonitor says (localcluster/prometheus.py) and evaluates the stack's PrometheusRule
groups as the cluster holds them, unchanged.

A test stack (staging with the ServiceMonitor and the alerts on) scales the burn-rate windows through its own
setting (`metrics.sloWindowDivisor: 60`: 1h and 5m become 1m and 5s), scraped every second. Under load, the recorded
ratios exist and a healthy release fires nothing; a release that fails every fifth request (e2e/releases/, an image
built for the test) fires the fast-burn availability alert.

Runs in the same process, namespaces and cluster as e2e/test_real_node.py (`make e2e`: e2e/real_cluster.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e.real_cluster import RealCluster
from harness.processes import wait_until
from localcluster.load import LoadClient
from localcluster.platform import set_image
from localcluster.prometheus import Prometheus, scrape_config
from localcluster.pulumi_cli import TIMINGS, Workspace

STACK, NAMESPACE = "staging", "webapp-monitored"
JOB = "webapp"
SELECT = f'{{namespace="{NAMESPACE}", job="{JOB}"}}'
FAST_BURN = "WebappAvailabilityBudgetBurn"
HEALTHY_WATCH_SECONDS = 75
"""Longer than the scaled fast burn's long window (1 min), so a healthy release has had every chance to fire it."""


@pytest.fixture(scope="module")
def monitored(real_cluster: RealCluster, prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The test stack deployed, and Prometheus given its ServiceMonitor's scrape and its PrometheusRule's groups."""
    real = real_cluster
    real.prepare_namespace(STACK, NAMESPACE)
    ws = real.workspace(
        tmp_path_factory.mktemp("monitored"),
        STACK,
        namespace=NAMESPACE,
        **{
            "metrics.serviceMonitor": "true",
            "metrics.alerts": "true",
            "metrics.interval": "1s",
            "metrics.sloWindowDivisor": "60",
        },
    )
    ws.label = "monitoring"
    ws.run("pulumi up --yes")
    (monitor,) = real.plane.kubectl_json("get", "servicemonitors", "-n", NAMESPACE)["items"]
    (rule,) = real.plane.kubectl_json("get", "prometheusrules", "-n", NAMESPACE)["items"]
    prometheus.reload(scrape_config(monitor, real.plane.kubeconfig), rule["spec"]["groups"])
    return ws


def _load(real: RealCluster) -> LoadClient:
    service = real.plane.kubectl_json("get", "service", JOB, "-n", NAMESPACE)
    return LoadClient(service["spec"]["clusterIP"], int(service["spec"]["ports"][0]["port"]))


def _slo_alerts(prometheus: Prometheus) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts() if a["labels"].get("namespace") == NAMESPACE]


def test_prometheus_scrapes_the_stacks_pods_and_records_its_ratios_and_a_healthy_release_fires_nothing(
    real_cluster: RealCluster, prometheus: Prometheus, monitored: Workspace
) -> None:
    pods = {p["metadata"]["name"] for p in real_cluster.pods(NAMESPACE) if p["status"].get("phase") == "Running"}

    def scraped() -> bool:
        targets = [t for t in prometheus.targets() if t["labels"].get("namespace") == NAMESPACE]
        return {t["labels"].get("pod") for t in targets} == pods and all(t["health"] == "up" for t in targets)

    wait_until("Prometheus scrapes every pod of the stack", scraped, 60, lambda: str(prometheus.targets()))
    targets = [t for t in prometheus.targets() if t["labels"].get("namespace") == NAMESPACE]
    assert {t["labels"]["job"] for t in targets} == {JOB}
    assert {t["labels"]["endpoint"] for t in targets} == {"management"}
    assert all(t["scrapeUrl"].endswith(":8081/metrics") for t in targets), targets
    groups = prometheus.rule_groups()
    assert sorted(g["name"] for g in groups) == sorted(
        [
            f"{JOB}.{NAMESPACE}.slo-ratios",
            f"{JOB}.{NAMESPACE}.slo",
            f"{JOB}.{NAMESPACE}.pods",
        ]
    )
    assert all(rule["health"] != "err" for group in groups for rule in group["rules"]), groups

    with _load(real_cluster) as load:
        wait_until(
            "the recorded ratios under load",
            lambda: (
                prometheus.value(f"webapp:http_requests_failed:ratio_rate1m{SELECT}") is not None
                and prometheus.value(f"webapp:http_requests_slow:ratio_rate5s{SELECT}") is not None
            ),
            60,
            lambda: str(prometheus.rule_groups()),
        )
        assert prometheus.value(f"webapp:http_requests_failed:ratio_rate1m{SELECT}") == 0.0
        started = time.monotonic()
        while time.monotonic() - started < HEALTHY_WATCH_SECONDS:
            assert _slo_alerts(prometheus) == [], "a healthy release fired"
            time.sleep(5)
    assert load.report.failures == []
    TIMINGS.append(("monitoring", f"healthy release watched under load: {load.report.total} requests", 0.0))


def test_a_release_failing_every_fifth_request_fires_the_fast_burn_alert(
    real_cluster: RealCluster, prometheus: Prometheus, monitored: Workspace
) -> None:
    real = real_cluster
    set_image(monitored, real.image_reference(real.image.failing_tag, real.image.failing_digest))
    with _load(real) as load:
        monitored.run("pulumi up --yes")
        rolled = time.monotonic()

        def fast_burn_firing() -> bool:
            return any(
                a["labels"]["alertname"] == FAST_BURN and a["labels"]["burn_window"] == "1m" and a["state"] == "firing"
                for a in _slo_alerts(prometheus)
            )

        wait_until("the fast-burn availability alert fires", fast_burn_firing, 120, lambda: str(prometheus.alerts()))
        TIMINGS.append(
            ("monitoring", "failing release rolled out until the fast burn fired", time.monotonic() - rolled)
        )

        def failed_share() -> float | None:
            return prometheus.value(f"webapp:http_requests_failed:ratio_rate5s{SELECT}")

        # Once only the new pods answer, the shortest window holds the release's own failure rate.
        wait_until(
            "the recorded 5 s share near one in five",
            lambda: 0.1 < (failed_share() or 0) < 0.3,
            30,
            lambda: str(failed_share()),
        )
    assert any("HTTP 500" in failure for failure in load.report.failures), load.report.failures[:5]
    monitored.run("pulumi destroy --yes")

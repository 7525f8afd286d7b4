"""A real Prometheus (`make node` builds it from its Go module) that scrapes a stack the way its ServiceMonitor says
and evaluates its PrometheusRule's groups unchanged.

No Prometheus Operator runs here: its job, turning ServiceMonitors into Prometheus's scrape configuration, is
`scrape_config` below, a translation of the operator's documented semantics (its API reference for ServiceMonitor
and its generated configuration, `serviceMonitor/<namespace>/<name>/<endpoint>` jobs): Kubernetes service
discovery of the Service's endpoints in its namespace, kept by the selector's labels and the endpoint's port name,
`job` set to the Service's name, `namespace`, `service`, `pod`, `container` and `endpoint` labels, the endpoint's
path and interval. tests/test_prometheus_config.py holds it to those semantics; the e2e proves Prometheus scrapes
exactly the stack's pods with it.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.processes import free_port, wait_until
from localcluster.daemons import Daemons
from localcluster.paths import NODE_BIN

START_TIMEOUT_SECONDS = 60
QUERY_TIMEOUT_SECONDS = 10


def _label_name(key: str) -> str:
    """A Kubernetes label key as Prometheus's service discovery names it (every other character becomes `_`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def scrape_config(service_monitor: dict[str, Any], kubeconfig: Path) -> list[dict[str, Any]]:
    """The scrape configurations the Prometheus Operator generates for one ServiceMonitor (one per endpoint)."""
    metadata, spec = service_monitor["metadata"], service_monitor["spec"]
    namespace = metadata["namespace"]
    names = spec.get("namespaceSelector", {}).get("matchNames") or [namespace]
    keep_selected = [
        {
            "source_labels": [f"__meta_kubernetes_service_label_{_label_name(key)}"],
            "regex": re.escape(value),
            "action": "keep",
        }
        for key, value in sorted(spec["selector"].get("matchLabels", {}).items())
    ]
    jobs = []
    for index, endpoint in enumerate(spec["endpoints"]):
        relabel = [
            *keep_selected,
            {"source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": endpoint["port"], "action": "keep"},
            {
                "source_labels": [
                    "__meta_kubernetes_endpoint_address_target_kind",
                    "__meta_kubernetes_endpoint_address_target_name",
                ],
                "separator": ";",
                "regex": "Pod;(.*)",
                "replacement": "${1}",
                "target_label": "pod",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            # The job is the Service's name unless the ServiceMonitor names a label to take it from.
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"},
            *(
                [
                    {
                        "source_labels": [f"__meta_kubernetes_service_label_{_label_name(spec['jobLabel'])}"],
                        "target_label": "job",
                        "regex": "(.+)",
                        "replacement": "${1}",
                    }
                ]
                if spec.get("jobLabel")
                else []
            ),
            {"target_label": "endpoint", "replacement": endpoint["port"]},
        ]
        job: dict[str, Any] = {
            "job_name": f"serviceMonitor/{namespace}/{metadata['name']}/{index}",
            "honor_labels": False,
            "kubernetes_sd_configs": [
                {"role": "endpoints", "kubeconfig_file": str(kubeconfig), "namespaces": {"names": names}}
            ],
            "metrics_path": endpoint.get("path", "/metrics"),
            "relabel_configs": relabel,
        }
        if "interval" in endpoint:
            job["scrape_interval"] = endpoint["interval"]
        jobs.append(job)
    return jobs


@dataclass
class Prometheus:
    """A running Prometheus and its HTTP API."""

    port: int
    directory: Path
    daemons: Daemons

    def _get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=QUERY_TIMEOUT_SECONDS) as response:
            answer = json.loads(response.read())
        if answer.get("status") != "success":
            raise RuntimeError(f"Prometheus {path}: {answer}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: each series' labels (`metric`) and value."""
        result: list[dict[str, Any]] = self._get("/api/v1/query", query=expr)["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None when it has no series."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets, with their labels and health."""
        active: list[dict[str, Any]] = self._get("/api/v1/targets")["activeTargets"]
        return active

    def alerts(self) -> list[dict[str, Any]]:
        """Every pending or firing alert, with its labels and state."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        """The rule groups Prometheus loaded, with each rule's health."""
        groups: list[dict[str, Any]] = self._get("/api/v1/rules")["groups"]
        return groups

    def reload(self, scrape_configs: list[dict[str, Any]], rule_groups: list[dict[str, Any]]) -> None:
        """New scrape configurations and rules, applied by Prometheus's own reload endpoint."""
        _write_config(self.directory, scrape_configs, rule_groups)
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=QUERY_TIMEOUT_SECONDS):
            pass


def _write_config(directory: Path, scrape_configs: list[dict[str, Any]], rule_groups: list[dict[str, Any]]) -> Path:
    rules = directory / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
    config = directory / "prometheus.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                # Every second: a test stack divides the burn windows by 60 (metrics.sloWindowDivisor).
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": scrape_configs,
            },
            sort_keys=False,
        )
    )
    return config


def _ready(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
        return bool(response.status == 200)


@contextlib.contextmanager
def running_prometheus(directory: Path) -> Iterator[Prometheus]:
    """Prometheus on loopback with no targets and no rules yet (`Prometheus.reload` gives it a stack's)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = _write_config(directory, [], [])
    port = free_port()
    daemons = Daemons(directory)
    daemons.spawn(
        "prometheus",
        NODE_BIN / "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        hint="make node",
    )
    prometheus = Prometheus(port, directory, daemons)
    try:
        wait_until(
            "Prometheus ready",
            lambda: _ready(port),
            START_TIMEOUT_SECONDS,
            daemons.tails,
            daemons.alive,
        )
        yield prometheus
    finally:
        daemons.stop_all()


ListObjects = Callable[[str], list[dict[str, Any]]]
"""A kind (`servicemonitors`, `prometheusrules`) -> the objects of it in the followed namespace."""
FOLLOW_INTERVAL_SECONDS = 1.0


@contextlib.contextmanager
def following(prometheus: Prometheus, list_objects: ListObjects, kubeconfig: Path) -> Iterator[None]:
    """The operator's watch for one namespace: while inside, every ServiceMonitor and PrometheusRule there becomes
    Prometheus's configuration, reloaded whenever one appears, changes or goes (a canary's ServiceMonitor comes and
    goes with each release)."""
    stop = threading.Event()
    applied: list[str] = []
    problems: list[BaseException] = []

    def sync() -> None:
        monitors, rules = list_objects("servicemonitors"), list_objects("prometheusrules")
        wanted = json.dumps([[m["metadata"]["name"], m["spec"]] for m in monitors] + [r["spec"] for r in rules])
        if applied and applied[-1] == wanted:
            return
        scrapes = [job for monitor in monitors for job in scrape_config(monitor, kubeconfig)]
        prometheus.reload(scrapes, [group for rule in rules for group in rule["spec"].get("groups", [])])
        applied.append(wanted)

    def loop() -> None:
        while not stop.wait(FOLLOW_INTERVAL_SECONDS):
            try:
                sync()
            except Exception as error:  # reported when the block ends
                problems.append(error)
                return

    sync()
    thread = threading.Thread(target=loop, name="prometheus-follower", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
    if problems:
        raise RuntimeError(f"following the namespace's ServiceMonitors failed: {problems[0]!r}") from problems[0]

"""The ServiceMonitor -> scrape configuration translation the e2e's Prometheus runs with (localcluster/prometheus.py),
held to the Prometheus Operator's documented semantics, and the Prometheus it runs: the release promcheck pins."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from localcluster.prometheus import scrape_config
from tests.pulumi_helpers import committed_stack
from tools.stack_config import REPO_ROOT

KUBECONFIG = Path("/cluster/kubeconfig")


def _prod_service_monitor() -> dict[str, Any]:
    (monitor,) = [m.body for m in committed_stack("prod").manifests if m.kind == "ServiceMonitor"]
    return monitor


def _relabel(job: dict[str, Any], target: str) -> list[dict[str, Any]]:
    return [rule for rule in job["relabel_configs"] if rule.get("target_label") == target]


def test_one_job_per_endpoint_named_as_the_operator_names_it() -> None:
    monitor = _prod_service_monitor()
    (job,) = scrape_config(monitor, KUBECONFIG)
    assert job["job_name"] == f"serviceMonitor/{monitor['metadata']['namespace']}/{monitor['metadata']['name']}/0"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert job["metrics_path"] == endpoint["path"]
    assert job["scrape_interval"] == endpoint["interval"]
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery == {
        "role": "endpoints",
        "kubeconfig_file": str(KUBECONFIG),
        "namespaces": {"names": [monitor["metadata"]["namespace"]]},
    }


def test_only_the_selected_services_endpoints_on_the_named_port_are_kept() -> None:
    monitor = _prod_service_monitor()
    (job,) = scrape_config(monitor, KUBECONFIG)
    keeps = {
        tuple(rule["source_labels"]): rule["regex"] for rule in job["relabel_configs"] if rule.get("action") == "keep"
    }
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        label = "__meta_kubernetes_service_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)
        assert re.fullmatch(keeps[(label,)], value)
        assert not re.fullmatch(keeps[(label,)], value + "-other")
    assert keeps[("__meta_kubernetes_endpoint_port_name",)] == monitor["spec"]["endpoints"][0]["port"]


def test_the_series_get_the_labels_the_alerts_select_by() -> None:
    (job,) = scrape_config(_prod_service_monitor(), KUBECONFIG)
    # The alerts select `namespace` and `job` (the Service's name, as the operator sets it without a jobLabel).
    assert _relabel(job, "job")[0]["source_labels"] == ["__meta_kubernetes_service_name"]
    assert _relabel(job, "namespace")[0]["source_labels"] == ["__meta_kubernetes_namespace"]
    assert {"pod", "service", "container", "endpoint"} <= {
        r["target_label"] for r in job["relabel_configs"] if "target_label" in r
    }


def test_a_job_label_takes_the_job_from_that_service_label() -> None:
    monitor = _prod_service_monitor()
    monitor = {**monitor, "spec": {**monitor["spec"], "jobLabel": "app.kubernetes.io/name"}}
    (job,) = scrape_config(monitor, KUBECONFIG)
    assert _relabel(job, "job")[-1]["source_labels"] == ["__meta_kubernetes_service_label_app_kubernetes_io_name"]


def _pinned(module_dir: str) -> str:
    text = (REPO_ROOT / "toolchain" / module_dir / "go.mod").read_text()
    (version,) = re.findall(r"github\.com/prometheus/prometheus (v\S+)", text)
    assert isinstance(version, str)
    return version


def test_the_e2es_prometheus_is_the_release_whose_parser_checks_the_rules() -> None:
    assert _pinned("prometheus") == _pinned("promcheck")

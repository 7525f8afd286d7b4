"""WebMonitoring: the PrometheusRule and the Grafana dashboard, made only when asked, scoped to the stack's series."""

from __future__ import annotations

import json
from typing import Any

from harness.stack_values import valid_config
from tests.pulumi_helpers import kube, only, run_main
from webapp_platform.components.alert_rules import BURN_RATES, Scope, rule_groups
from webapp_platform.config.monitoring import MetricsSettings

MONITORED = {"serviceMonitor": True, "labels": {"release": "monitoring"}}


def _rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"]]


def test_nothing_unless_asked() -> None:
    run = run_main(valid_config(metrics=MONITORED))
    assert kube(run, "PrometheusRule") == []
    assert [c.object_name for c in kube(run, "ConfigMap") if c.object_name.endswith("-dashboard")] == []
    assert not [r for r in run.resources if r.type == "webapp:index:WebMonitoring"]


def test_rules_and_dashboard_carry_the_selecting_labels_and_live_in_the_stack_namespace() -> None:
    run = run_main(valid_config(metrics={**MONITORED, "alerts": True, "dashboard": True}))
    rule = only(run, "PrometheusRule")
    assert rule.inputs["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule.inputs["metadata"]["labels"]["release"] == "monitoring"
    assert rule.inputs["metadata"]["namespace"] == "webapp-test"
    assert only(run, "ServiceMonitor").inputs["metadata"]["labels"]["release"] == "monitoring"
    (dashboard,) = [c for c in kube(run, "ConfigMap") if c.object_name == "webapp-dashboard"]
    assert dashboard.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
    model = json.loads(dashboard.inputs["data"]["webapp-test.json"])
    assert model["uid"] == "webapp-test"
    queries = [target["expr"] for panel in model["panels"] for target in panel["targets"]]
    assert all('namespace="webapp-test", job="webapp"' in query for query in queries), queries
    positions = {(p["gridPos"]["x"], p["gridPos"]["y"]) for p in model["panels"]}
    assert len(positions) == len(model["panels"]), "no two panels on top of each other"


def test_burn_rate_alerts_follow_the_objectives() -> None:
    metrics = MetricsSettings.model_validate(
        {**MONITORED, "alerts": True, "availabilityObjective": 99.5, "latencyObjectiveSeconds": 0.25}
    )
    rules = _rules(rule_groups(Scope("shop", "web"), metrics))
    availability = [r for r in rules if r.get("alert") == "WebappAvailabilityBudgetBurn"]
    assert [r["labels"]["severity"] for r in availability] == [rate.severity for rate in BURN_RATES]
    fast = availability[0]["expr"]
    assert fast == (
        'webapp:http_requests_failed:ratio_rate1h{namespace="shop", job="web"} > (14.4 * 0.005)'
        ' and webapp:http_requests_failed:ratio_rate5m{namespace="shop", job="web"} > (14.4 * 0.005)'
    )
    slow_5m = next(r for r in rules if r.get("record") == "webapp:http_requests_slow:ratio_rate5m")
    assert 'le="0.25"' in slow_5m["expr"]
    latency = [r for r in rules if r.get("alert") == "WebappLatencyBudgetBurn"]
    assert "(14.4 * 0.01)" in latency[0]["expr"]


def test_pod_alerts_select_only_this_deployments_pods() -> None:
    rules = _rules(rule_groups(Scope("shop", "web"), MetricsSettings.model_validate({**MONITORED, "alerts": True})))
    restarts = next(r for r in rules if r.get("alert") == "WebappPodsRestarting")
    assert 'namespace="shop", pod=~"web-[a-z0-9]+-[a-z0-9]+"' in restarts["expr"]


def test_a_test_stack_scales_the_burn_windows_and_the_evaluation_through_its_setting() -> None:
    metrics = MetricsSettings.model_validate({**MONITORED, "alerts": True, "sloWindowDivisor": 60})
    groups = rule_groups(Scope("shop", "web"), metrics)
    ratios = groups[0]
    assert ratios["interval"] == "1s"  # 30 s / 60, at least a second
    recorded = [rule["record"] for rule in ratios["rules"]]
    assert recorded[:6] == [
        f"webapp:http_requests_failed:ratio_rate{w}" for w in ("5s", "30s", "1m", "2m", "6m", "24m")
    ]
    fast = next(r for r in _rules(groups) if r.get("alert") == "WebappAvailabilityBudgetBurn")
    assert fast["labels"]["burn_window"] == "1m"
    assert "ratio_rate1m{" in fast["expr"]
    assert "ratio_rate5s{" in fast["expr"]
    assert "[5s]" in next(r for r in ratios["rules"] if r["record"].endswith("ratio_rate5s"))["expr"]

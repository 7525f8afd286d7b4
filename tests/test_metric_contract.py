"""The alerts and the dashboard read what the app really exports, and Prometheus's own parser accepts them.

A real server is scraped for the series names and the latency histogram's bounds
that `config.app_metrics` promises; the prod stack's PrometheusRule goes through
Prometheus's rule loader and its dashboard's queries through the PromQL parser
(toolchain/promcheck), and every series they read must be exported by the app, written
by a recording rule beside them, or come from the cluster's own exporters. The
dashboard itself must decode under Grafana's schema (toolchain/grafanacheck).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from harness.app_server import RunningServer
from harness.processes import wait_until
from tests.conftest import StartServer
from tests.pulumi_helpers import committed_stack, kube, only
from tools.monitoring_checks import PromCheck, check_dashboard, check_expressions, check_rule_groups, recorded_names
from webapp_platform.config import app_metrics

pytestmark = pytest.mark.slow

PROMISED = app_metrics.BUNDLED.all()


def _scrape(start_app: StartServer) -> dict[str, float]:
    server: RunningServer = start_app(WEB_CONCURRENCY="1")
    server.wait_until_ready()
    assert server.get("/").status == 200
    # A request is recorded when its body is closed, just after the client has read it.
    wait_until("the request recorded", lambda: app_metrics.BUNDLED.requests in _names(server.metrics()), 10.0)
    return server.metrics()


def _names(samples: dict[str, float]) -> set[str]:
    return {key.split("{", 1)[0] for key in samples}


def _prod_rules() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = only(committed_stack("prod").run, "PrometheusRule").inputs["spec"]["groups"]
    return groups


def _prod_dashboard() -> dict[str, Any]:
    (config_map,) = [c for c in kube(committed_stack("prod").run, "ConfigMap") if c.object_name.endswith("-dashboard")]
    (model,) = (json.loads(text) for text in config_map.inputs["data"].values())
    return dict(model)


def _prod_dashboard_queries() -> list[str]:
    return [target["expr"] for panel in _prod_dashboard()["panels"] for target in panel["targets"]]


def test_the_app_exports_every_series_the_program_relies_on(start_app: StartServer) -> None:
    samples = _scrape(start_app)
    assert sorted(set(PROMISED) - _names(samples)) == [], "config.app_metrics names series the app does not export"
    bounds = {
        match.group(1)
        for key in samples
        if key.startswith(app_metrics.BUNDLED.duration_bucket) and (match := re.search(r'le="([^"]+)"', key))
    }
    assert bounds == {app_metrics.bucket_label(bound) for bound in app_metrics.LATENCY_BUCKETS} | {"+Inf"}


def test_prometheus_loads_the_alerts_and_they_read_only_known_series() -> None:
    groups = _prod_rules()
    checked = check_rule_groups(groups)
    assert checked.errors == ()
    known = set(PROMISED) | app_metrics.CLUSTER_METRICS | recorded_names(groups)
    assert sorted(checked.metrics - known) == []
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    assert {"WebappAvailabilityBudgetBurn", "WebappLatencyBudgetBurn", "WebappPodsRestarting"} <= alerts
    assert {"WebappPodsNotReady", "WebappLivenessProbesFailing", "WebappWorkersStalled"} <= alerts


def test_the_dashboard_queries_parse_and_read_only_what_the_app_exports() -> None:
    checked = check_expressions(_prod_dashboard_queries())
    assert checked.errors == ()
    assert sorted(checked.metrics - set(PROMISED)) == []
    assert checked.metrics >= {
        app_metrics.BUNDLED.requests,
        app_metrics.BUNDLED.duration_bucket,
        app_metrics.BUNDLED.stalled_workers,
    }


def test_the_checks_fail_on_what_prometheus_would_refuse() -> None:
    broken: PromCheck = check_rule_groups(
        [{"name": "g", "rules": [{"alert": "A", "expr": "rate(webapp_http_requests_total[5m"}]}]
    )
    assert broken.errors
    assert "parse error" in broken.errors[0]
    bad_template = check_rule_groups(
        [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "annotations": {"summary": "{{ $value "}}]}]
    )
    assert bad_template.errors
    unknown = check_expressions(["sum(rate(webapp_http_requets_total[$__rate_interval]))"])
    assert unknown.errors == ()
    assert unknown.metrics == {"webapp_http_requets_total"}, "a typo is a metric the app does not export"


def test_grafana_decodes_the_dashboard_strictly_and_refuses_a_broken_one() -> None:
    model = _prod_dashboard()
    assert check_dashboard(model) == ()
    broken = copy.deepcopy(model)
    broken["panels"][0]["gridPos"]["w"] = "wide"
    del broken["panels"][1]["options"]["tooltip"]
    broken["refersh"] = "30s"
    errors = "\n".join(check_dashboard(broken))
    assert "panels[0].gridPos.w" in errors
    assert "panels[1].options.tooltip" in errors
    assert "refersh" in errors

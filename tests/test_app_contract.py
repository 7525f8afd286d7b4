"""The app contract: another image's command, ports, probes, user, drain and metrics reach the objects, and every
inconsistent or hostile contract is refused naming its key."""

from __future__ import annotations

from typing import Any

import pytest

from harness.stack_values import valid_config
from tests.pulumi_helpers import container, kube, only, run_components, run_main
from tools.mocks import ProgramRun
from webapp_platform.components.alert_rules import Scope, rule_groups
from webapp_platform.components.labels import standard_labels
from webapp_platform.components.web_service import WebService, WebServiceArgs
from webapp_platform.config.app_metrics import MetricNames
from webapp_platform.config.contract import BUNDLED_APP, AppContract
from webapp_platform.config.errors import ConfigError
from webapp_platform.config.image import ImageSettings
from webapp_platform.config.loading import parse_settings
from webapp_platform.config.monitoring import MetricsSettings
from webapp_platform.config.rules import TERMINATION_MARGIN_SECONDS
from webapp_platform.config.settings import ResourceSettings

RESOURCES = ResourceSettings.model_validate(
    {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
)
ONE_PORT_APP = AppContract.model_validate(
    {
        "command": ["python3", "/srv/hello.py"],
        "args": ["--greeting", "hi"],
        "port": 9000,
        "managementPort": None,
        "liveness": {"path": "/livez", "port": "traffic"},
        "readiness": {"path": "/readyz", "port": "traffic"},
        "startup": {"path": "/livez", "port": "traffic"},
        "runAsUser": 20002,
        "runAsGroup": 20003,
        "drain": "preStop",
        "preStopSeconds": 7,
        "metrics": None,
        "platformEnv": ["APP_VERSION", "PORT"],
    }
)


def _service(app: AppContract, **overrides: Any) -> ProgramRun:
    args = WebServiceArgs(
        namespace="hello",
        image=ImageSettings(repository="registry.example.com/hello", tag="1.0.0"),
        labels=standard_labels("hello", "hello-test", "web", "hello"),
        object_name="hello",
        resources=RESOURCES,
        replicas=2,
        app=app,
        **overrides,
    )
    return run_components(lambda: WebService("hello", args))


@pytest.fixture(scope="module")
def one_port() -> ProgramRun:
    return _service(ONE_PORT_APP)


def test_the_contracts_command_ports_and_probes_reach_the_container(one_port: ProgramRun) -> None:
    spec = container(only(one_port, "Deployment"))
    assert (spec["command"], spec["args"]) == (["python3", "/srv/hello.py"], ["--greeting", "hi"])
    assert spec["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    probes = {kind: spec[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes == {
        "livenessProbe": {"path": "/livez", "port": "http"},
        "readinessProbe": {"path": "/readyz", "port": "http"},
        "startupProbe": {"path": "/livez", "port": "http"},
    }
    assert [(e["name"], e["value"]) for e in spec["env"]] == [("APP_VERSION", "1.0.0"), ("PORT", "9000")]


def test_the_contracts_user_runs_the_pod_and_the_container(one_port: ProgramRun) -> None:
    pod = only(one_port, "Deployment").inputs["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (20002, 20003)
    assert pod["securityContext"]["fsGroup"] == 20003
    context = container(only(one_port, "Deployment"))["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == (20002, 20003, True)


def test_an_app_that_does_not_drain_itself_gets_a_pre_stop_wait_inside_its_grace_period(one_port: ProgramRun) -> None:
    pod = only(one_port, "Deployment").inputs["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    assert spec["lifecycle"] == {"preStop": {"sleep": {"seconds": 7}}}
    # The wait, then the in-flight requests (gracefulTimeoutSeconds' default 20), then the margin.
    assert pod["terminationGracePeriodSeconds"] == 7 + 20 + TERMINATION_MARGIN_SECONDS


def test_a_self_draining_app_gets_no_pre_stop_wait() -> None:
    spec = container(only(_service(BUNDLED_APP), "Deployment"))
    assert "lifecycle" not in spec


def test_an_app_without_metrics_or_a_management_port_is_not_scraped_nor_opened(one_port: ProgramRun) -> None:
    template = only(one_port, "Deployment").inputs["spec"]["template"]
    assert "annotations" not in template["metadata"]
    (rule,) = only(one_port, "NetworkPolicy").inputs["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert kube(one_port, "ServiceMonitor") == []


def test_a_service_monitor_for_an_app_without_metrics_is_refused() -> None:
    with pytest.raises(Exception, match="publishes none"):
        _service(ONE_PORT_APP, metrics=MetricsSettings(service_monitor=True))


def test_metrics_on_the_traffic_port_are_scraped_there() -> None:
    app = AppContract.model_validate(
        {**ONE_PORT_APP.model_dump(by_alias=True), "metrics": {"path": "/stats", "port": "traffic", "prefix": "hello_"}}
    )
    run = _service(app, metrics=MetricsSettings(service_monitor=True))
    annotations = only(run, "Deployment").inputs["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("9000", "/stats")
    (endpoint,) = only(run, "ServiceMonitor").inputs["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/stats")
    assert [p["name"] for p in only(run, "Service").inputs["spec"]["ports"]] == ["http"]


def test_the_alerts_read_the_series_under_the_contracts_prefix() -> None:
    metrics = MetricsSettings(service_monitor=True, alerts=True)
    rules = str(rule_groups(Scope("shop", "web", MetricNames("shop_")), metrics))
    assert "shop_http_requests_total" in rules
    assert "webapp_" not in rules


def test_a_stack_file_sets_the_contract_and_its_prefix_reaches_the_alerts_and_the_dashboard() -> None:
    raw = valid_config(
        app={"metrics": {"prefix": "shop_"}},
        metrics={"serviceMonitor": True, "alerts": True, "dashboard": True},
    )
    run = run_main(raw)
    rules = str(only(run, "PrometheusRule").inputs["spec"])
    (dashboard_map,) = [r for r in kube(run, "ConfigMap") if r.object_name == "webapp-dashboard"]
    dashboard = str(dashboard_map.inputs["data"])
    for text in (rules, dashboard):
        assert "shop_http_requests_total" in text
        assert "webapp_http" not in text


BAD_CONTRACTS = [
    ("same-port", {"managementPort": 8080}, "managementPort 8080 is the traffic port"),
    ("probe-on-a-missing-port", {"managementPort": None}, "liveness, readiness, startup, metrics use the management"),
    ("root", {"runAsUser": 0}, "app.runAsUser"),
    ("negative-group", {"runAsGroup": -1}, "app.runAsGroup"),
    ("port-zero", {"port": 0}, "app.port"),
    ("port-too-high", {"port": 70000}, "app.port"),
    ("unknown-variable", {"platformEnv": ["APP_VERSION", "LD_PRELOAD"]}, "['LD_PRELOAD'] are not variables"),
    ("twice", {"platformEnv": ["PORT", "PORT"]}, "listed twice"),
    ("lowercase-variable", {"platformEnv": ["port"]}, "app.platformEnv.0"),
    ("relative-path", {"liveness": {"path": "healthz"}}, "app.liveness.path"),
    ("path-with-a-space", {"readiness": {"path": "/ready now"}}, "app.readiness.path"),
    ("path-with-a-newline", {"startup": {"path": "/ok\r\nX-Evil: 1"}}, "app.startup.path"),
    ("unknown-port-role", {"liveness": {"path": "/h", "port": "admin"}}, "app.liveness.port"),
    ("unknown-drain", {"drain": "sleep"}, "app.drain"),
    ("long-pre-stop", {"preStopSeconds": 301}, "app.preStopSeconds"),
    ("bad-prefix", {"metrics": {"prefix": "my-app"}}, "app.metrics.prefix"),
    ("unknown-key", {"healthPath": "/h"}, "app.healthPath"),
    ("command-not-a-list", {"command": "python app.py"}, "app.command"),
    (
        "metrics-management-but-no-port",
        {
            "managementPort": None,
            "liveness": {"path": "/h", "port": "traffic"},
            "readiness": {"path": "/r", "port": "traffic"},
            "startup": {"path": "/h", "port": "traffic"},
        },
        "metrics use the management port",
    ),
]


@pytest.mark.parametrize(("app", "message"), [pytest.param(a, m, id=i) for i, a, m in BAD_CONTRACTS])
def test_a_bad_contract_is_refused_naming_its_key(app: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings("test", valid_config(app=app), set())
    assert message in str(exc.value), str(exc.value)


def test_alerts_for_an_app_without_metrics_are_refused() -> None:
    raw = valid_config(app={"metrics": None}, metrics={"serviceMonitor": True, "alerts": True, "dashboard": True})
    with pytest.raises(ConfigError) as exc:
        parse_settings("test", raw, set())
    assert "metrics.alerts and metrics.dashboard and metrics.serviceMonitor read the app's metrics" in str(exc.value)

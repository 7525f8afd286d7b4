"""The canary as the program renders it: its own Deployment, Service and immutable ConfigMap beside an untouched
stable service; the traffic split by the HTTPRoute's weights or by the share of pods; the settings refused where
they make no sense."""

from __future__ import annotations

from typing import Any

import pytest

from harness.stack_values import valid_config
from tests.pulumi_helpers import container, kube, run_main
from tools.mocks import RecordedResource
from webapp_platform.components.canary import canary_replicas, effective_weight
from webapp_platform.config.errors import ConfigError

DIGEST = "sha256:" + "b" * 64
MONITORED = {"serviceMonitor": True}
CANARY = {"enabled": True, "steps": [{"weight": 20, "seconds": 30}, {"weight": 50, "seconds": 30}]}
ROUTE = {
    "enabled": True,
    "gateway": {"name": "shared", "namespace": "gateway"},
    "hostnames": ["webapp.example.com"],
    "scheme": "http",
}


def _release(weight: int = 20, **app_config: str) -> dict[str, Any]:
    return {
        "image": {"repository": "ghcr.io/example/webapp", "tag": "2.0.0", "digest": DIGEST},
        "appConfig": {"GREETING": "Hello from 2.0.0", **app_config},
        "weight": weight,
    }


def _config(release: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    raw = valid_config(metrics=MONITORED, canary=CANARY, replicas=4, **overrides)
    if release is not None:
        raw["canaryRelease"] = release
    return raw


def _by_name(run: Any, kind: str) -> dict[str, RecordedResource]:
    return {r.inputs["metadata"].get("name") or r.name: r for r in kube(run, kind)}


def test_without_a_release_in_progress_a_canary_stack_renders_as_any_other() -> None:
    plain = run_main(valid_config(metrics=MONITORED, replicas=4))
    canary = run_main(_config())
    assert sorted((r.type, r.name) for r in canary.resources) == sorted((r.type, r.name) for r in plain.resources)
    assert "canary" not in canary.outputs


def test_a_release_runs_beside_the_stable_service_with_its_own_config_and_never_touches_it() -> None:
    plain = run_main(_config())
    run = run_main(_config(_release()))
    # Every stable object is exactly as it was: the canary only adds.
    for before in plain.resources:
        (now,) = [r.inputs for r in run.resources if (r.type, r.name) == (before.type, before.name)]
        assert now == before.inputs, before.name

    deployments = _by_name(run, "Deployment")
    assert set(deployments) == {"webapp", "webapp-canary"}
    canary = deployments["webapp-canary"]
    assert container(canary)["image"] == f"ghcr.io/example/webapp:2.0.0@{DIGEST}"
    assert canary.inputs["spec"]["selector"]["matchLabels"]["track"] == "canary"
    assert "track" not in deployments["webapp"].inputs["spec"]["selector"]["matchLabels"]
    # Its own immutable ConfigMap, with the release's values; the stable pods keep reading theirs.
    (config_ref,) = [e["configMapRef"]["name"] for e in container(canary)["envFrom"] if "configMapRef" in e]
    (stable_ref,) = [
        e["configMapRef"]["name"] for e in container(deployments["webapp"])["envFrom"] if "configMapRef" in e
    ]
    assert config_ref != stable_ref
    maps = {r.name: r for r in kube(run, "ConfigMap")}
    assert maps["webapp-canary-cm"].inputs["immutable"] is True
    assert maps["webapp-canary-cm"].inputs["data"]["GREETING"] == "Hello from 2.0.0"
    # No autoscaler of its own; its own ServiceMonitor, so its series are job="webapp-canary".
    assert set(_by_name(run, "HorizontalPodAutoscaler")) <= {"webapp"}
    assert set(_by_name(run, "ServiceMonitor")) == {"webapp", "webapp-canary"}
    assert set(_by_name(run, "NetworkPolicy")) == {"webapp", "webapp-canary"}
    assert run.outputs["canary"]["image"] == f"ghcr.io/example/webapp:2.0.0@{DIGEST}"
    assert run.outputs["canary"]["weight"] == 20


def test_behind_an_httproute_the_route_weighs_the_two_services_and_the_stable_service_keeps_its_pods() -> None:
    run = run_main(_config(_release(weight=20), httpRoute=ROUTE))
    (route,) = kube(run, "HTTPRoute")
    refs = route.inputs["spec"]["rules"][0]["backendRefs"]
    assert [(ref["name"], ref["weight"]) for ref in refs] == [("webapp", 80), ("webapp-canary", 20)]
    services = _by_name(run, "Service")
    stable_selector = services["webapp"].inputs["spec"]["selector"]
    canary_pod_labels = _by_name(run, "Deployment")["webapp-canary"].inputs["spec"]["template"]["metadata"]["labels"]
    assert not all(canary_pod_labels.get(key) == value for key, value in stable_selector.items())
    # 4 stable pods at 20 %: one canary pod carries its share.
    assert _by_name(run, "Deployment")["webapp-canary"].inputs["spec"]["replicas"] == 1


def test_behind_an_ingress_the_stable_service_balances_over_both_by_their_share_of_pods() -> None:
    run = run_main(_config(_release(weight=50)))
    services = _by_name(run, "Service")
    stable_selector = services["webapp"].inputs["spec"]["selector"]
    canary = _by_name(run, "Deployment")["webapp-canary"]
    pod_labels = canary.inputs["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(key) == value for key, value in stable_selector.items())
    assert canary.inputs["spec"]["replicas"] == 4
    assert run.outputs["canary"]["effectiveWeight"] == 50.0
    # One budget per pod: the stable one selects the canary's pods too (the eviction API refuses a pod two select).
    (budget,) = kube(run, "PodDisruptionBudget")
    assert all(pod_labels.get(key) == value for key, value in budget.inputs["spec"]["selector"]["matchLabels"].items())


def test_behind_an_httproute_a_canary_of_several_pods_has_its_own_budget() -> None:
    run = run_main(_config(_release(weight=50), httpRoute=ROUTE))
    assert set(_by_name(run, "PodDisruptionBudget")) == {"webapp", "webapp-canary"}


@pytest.mark.parametrize(
    ("stable", "weight", "by_route", "replicas", "share"),
    [
        (4, 20, True, 1, 20.0),
        (10, 50, True, 5, 50.0),
        (3, 25, False, 1, 25.0),
        (3, 50, False, 3, 50.0),
        (1, 10, False, 1, 50.0),  # one stable pod: the smallest canary is half the pods
    ],
)
def test_the_canary_pod_count_and_the_share_it_gets(
    stable: int, weight: int, by_route: bool, replicas: int, share: float
) -> None:
    assert canary_replicas(stable, weight, by_route=by_route) == replicas
    assert effective_weight(stable, weight, by_route=by_route) == share


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"canary": {"enabled": True, "steps": [{"weight": 50, "seconds": 30}, {"weight": 20, "seconds": 30}]}},
            "webapp:canary.steps: the steps' weights [50, 20] must rise",
        ),
        (
            {"canary": {"enabled": True, "steps": [{"weight": 100, "seconds": 30}]}},
            "webapp:canary.steps.0.weight: Input should be less than or equal to 99",
        ),
        (
            {"canary": {"enabled": True, "steps": [{"weight": 0, "seconds": 30}]}},
            "webapp:canary.steps.0.weight: Input should be greater than or equal to 1",
        ),
        ({"canary": {"enabled": True, "steps": []}}, "webapp:canary.steps: List should have at least 1 item"),
        (
            {"canary": {"enabled": True, "steps": [{"weight": 10, "seconds": 0}]}},
            "webapp:canary.steps.0.seconds: Input should be greater than or equal to 1",
        ),
        (
            {"canary": {"enabled": True, "analysis": {"maxFailedChecks": -1}}},
            "webapp:canary.analysis.maxFailedChecks: Input should be greater than or equal to 0",
        ),
        (
            {"canary": {"enabled": True, "analysis": {"burnRateThreshold": 0.5}}},
            "webapp:canary.analysis.burnRateThreshold: Input should be greater than or equal to 1",
        ),
        (
            {"canary": {"enabled": True, "analysis": {"window": 5}}},
            "webapp:canary.analysis.window is not a known field here",
        ),
        ({"metrics": {}}, "canary.enabled needs metrics.serviceMonitor: true"),
        ({"canary": {"enabled": False}, "canaryRelease": _release()}, "canaryRelease is set and canary.enabled is not"),
        (
            {"canaryRelease": {**_release(), "weight": 100}},
            "webapp:canaryRelease.weight: Input should be less than or equal to 99",
        ),
        (
            {"canaryRelease": {**_release(), "image": {"repository": "ghcr.io/example/webapp", "tag": "2.0.0"}}},
            "image.digest is required: a canary runs an image pinned by digest",
        ),
        (
            {
                "canaryRelease": {
                    **_release(),
                    "image": {"repository": "ghcr.io/example/webapp", "tag": "latest", "digest": DIGEST},
                }
            },
            "webapp:canaryRelease.image.tag",
        ),
        (
            {"canaryRelease": _release(DATABASE_PASSWORD="hunter2")},
            "DATABASE_PASSWORD looks secret and would land in a plain ConfigMap",
        ),
        ({"canaryRelease": _release(PORT="9000")}, "PORT is set by the Deployment itself"),
        ({"canaryRelease": _release(ENABLE_TEST_ROUTES="true")}, "ENABLE_TEST_ROUTES cannot be set through appConfig"),
        ({"canaryRelease": {**_release(), "appConfig": {"bad-name": "x"}}}, "'bad-name' is not an environment"),
        ({"canaryRelease": "not an object"}, "webapp:canaryRelease"),
    ],
)
def test_bad_canary_settings_are_refused_naming_the_key(overrides: dict[str, Any], expected: str) -> None:
    raw = _config()
    raw.update(overrides)
    with pytest.raises(ConfigError) as error:
        run_main(raw)
    assert expected in str(error.value), str(error.value)

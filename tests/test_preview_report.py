"""tools/preview_report.py on the engine's event log (`--event-log`, one JSON event per line; the e2e feeds it the
real CLI's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.preview_report import Finding, findings, main, read_events, report

DEPLOYMENT = (
    "urn:pulumi:prod::webapp::webapp:index:WebApp$webapp:index:WebService$kubernetes:apps/v1:Deployment::webapp-deploy"
)
CONFIG_MAP = "urn:pulumi:prod::webapp::webapp:index:WebApp$kubernetes:core/v1:ConfigMap::webapp-cm"


def _policy(name: str, level: str, urn: str, message: str) -> dict[str, object]:
    return {
        "sequence": 3,
        "timestamp": 1764680000,
        "policyEvent": {
            "resourceUrn": urn,
            "message": message,
            "color": "raw",
            "policyName": name,
            "policyPackName": "webapp-kubernetes",
            "policyPackVersion": "0.0.1",
            "enforcementLevel": level,
        },
    }


def _error(message: str) -> dict[str, object]:
    return {
        "sequence": 9,
        "timestamp": 1764680001,
        "diagnosticEvent": {"message": message, "color": "raw", "severity": "error"},
    }


POLICY_EVENTS = [
    {"sequence": 0, "timestamp": 1764680000, "preludeEvent": {"config": {}}},
    _policy(
        "images-by-digest",
        "mandatory",
        DEPLOYMENT,
        "Container images are pinned by digest (enabled by policy/deploy-config.json).\n"
        "<{%fg 1%}>Deployment container 'web' runs 'ghcr.io/example/webapp:1.4.2' by tag only.<{%reset%}>\n",
    ),
    _policy("no-test-routes", "advisory", CONFIG_MAP, "ConfigMap sets ENABLE_TEST_ROUTES."),
    _policy("configmaps-hold-no-secrets", "disabled", CONFIG_MAP, "disabled: never reported"),
    _error("preview failed: 1 mandatory policy violation"),
]

SETTING_EVENTS = [
    _error(
        "Program failed with an unhandled exception:\n"
        "config.errors.ConfigError: invalid stack configuration (2 problem(s)):\n"
        "  - webapp:image.tag: 'latest' cannot be tracked or rolled back\n"
        "  - webapp:replicas: Input should be less than or equal to 100\n"
    ),
]


def test_policy_events_are_named_with_their_level_resource_and_message() -> None:
    assert findings(POLICY_EVENTS) == [
        Finding(
            "policy `images-by-digest` (mandatory) on kubernetes:apps/v1:Deployment: webapp-deploy",
            "Container images are pinned by digest (enabled by policy/deploy-config.json). "
            "Deployment container 'web' runs 'ghcr.io/example/webapp:1.4.2' by tag only.",
        ),
        Finding(
            "policy `no-test-routes` (advisory) on kubernetes:core/v1:ConfigMap: webapp-cm",
            "ConfigMap sets ENABLE_TEST_ROUTES.",
            blocking=False,
        ),
    ]


def test_setting_problems_are_named_by_key() -> None:
    assert findings(SETTING_EVENTS) == [
        Finding("setting `webapp:image.tag`", "'latest' cannot be tracked or rolled back"),
        Finding("setting `webapp:replicas`", "Input should be less than or equal to 100"),
    ]


def test_a_stack_policy_names_the_stack_and_an_unknown_error_is_reported_whole() -> None:
    stack_policy = _policy("replicated-deployments-have-disruption-budgets", "mandatory", "", "no PodDisruptionBudget")
    assert findings([stack_policy])[0].what.endswith("on the stack")
    assert findings([_error("could not connect to the cluster")]) == [
        Finding("error", "could not connect to the cluster")
    ]


def test_a_failed_preview_says_why_above_the_output_and_advisory_findings_show_either_way() -> None:
    output = "Resources:\n    \x1b[1m2 unchanged\x1b[0m\n"
    failed = report("prod", "failure", output, POLICY_EVENTS)
    why, _, tail = failed.partition("<details>")
    assert why.startswith("### Preview of stack `prod`: FAILED")
    assert "It was stopped by:\n\n- policy `images-by-digest` (mandatory)" in why
    assert "Advisory policy findings (they do not stop a deploy):\n\n- policy `no-test-routes` (advisory)" in why
    assert "\x1b[" not in failed
    assert "<{%" not in failed
    assert "2 unchanged" in tail
    advisory_only = [event for event in POLICY_EVENTS if "no-test-routes" in json.dumps(event)]
    passed = report("dev", "success", "Resources:\n    12 unchanged\n", advisory_only)
    assert passed.startswith("### Preview of stack `dev`: passed")
    assert "stopped by" not in passed
    assert "- policy `no-test-routes` (advisory) on kubernetes:core/v1:ConfigMap: webapp-cm" in passed


@pytest.mark.parametrize(
    "text",
    ['{"sequence": 1, "policyEvent": {"policyName": "x", "enforcementLevel": "mandatory", "mess', "[]", "null", "\x00"],
    ids=["torn-last-line", "a-list", "null", "binary"],
)
def test_an_event_log_that_is_not_all_events_keeps_what_is(text: str) -> None:
    good = json.dumps(_policy("images-are-pinned", "mandatory", DEPLOYMENT, "latest"))
    assert [f.what.split("`")[1] for f in findings(read_events(good + "\n" + text))] == ["images-are-pinned"]


def test_an_unrecognised_failure_points_at_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "preview.txt"
    log.write_text("error: could not connect to the cluster\n")
    assert main(["staging", "failure", str(log), str(tmp_path / "never-written.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "No policy or setting problem was recognised" in out
    assert "could not connect to the cluster" in out
    assert main(["staging", "failure", str(log)]) == 2

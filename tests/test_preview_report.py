"""tools/preview_report.py on output in the CLI's format (the e2e feeds it the real CLI's output)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.preview_report import Finding, findings, main, report

POLICY_FAILURE = """\
Previewing update (prod):
Policies:
    \x1b[31m❌ webapp-kubernetes@v0.0.1 (local: policy)\x1b[0m
        - [mandatory]  images-by-digest  (kubernetes:apps/v1:Deployment: webapp-deploy)
          Container images are pinned by digest (enabled by policy/deploy-config.json).
          Deployment container 'web' runs 'ghcr.io/example/webapp:1.4.2' by tag only.
        - [advisory]  no-test-routes  (kubernetes:core/v1:ConfigMap: webapp-cm)
          ConfigMap sets ENABLE_TEST_ROUTES.

Resources:
    2 unchanged
"""

SETTING_FAILURE = """\
    error: Program failed with an unhandled exception:
    config.errors.ConfigError: invalid stack configuration (2 problem(s)):
      - webapp:image.tag: 'latest' cannot be tracked or rolled back
      - webapp:replicas: Input should be less than or equal to 100
"""


def test_policy_violations_are_named_with_their_resource_and_message() -> None:
    assert findings(POLICY_FAILURE) == [
        Finding(
            "policy `images-by-digest` (mandatory) on kubernetes:apps/v1:Deployment: webapp-deploy",
            "Container images are pinned by digest (enabled by policy/deploy-config.json). "
            "Deployment container 'web' runs 'ghcr.io/example/webapp:1.4.2' by tag only.",
        ),
        Finding(
            "policy `no-test-routes` (advisory) on kubernetes:core/v1:ConfigMap: webapp-cm",
            "ConfigMap sets ENABLE_TEST_ROUTES.",
        ),
    ]


def test_setting_problems_are_named_by_key() -> None:
    assert findings(SETTING_FAILURE) == [
        Finding("setting `webapp:image.tag`", "'latest' cannot be tracked or rolled back"),
        Finding("setting `webapp:replicas`", "Input should be less than or equal to 100"),
    ]


def test_a_failed_preview_says_why_above_the_output_and_a_passed_one_just_passes() -> None:
    failed = report("prod", "failure", POLICY_FAILURE)
    why, _, output = failed.partition("<details>")
    assert why.startswith("### Preview of stack `prod`: FAILED")
    assert "- policy `images-by-digest` (mandatory)" in why
    assert "\x1b[" not in failed
    assert "2 unchanged" in output
    passed = report("dev", "success", "Resources:\n    12 unchanged\n")
    assert passed.startswith("### Preview of stack `dev`: passed")
    assert "stopped by" not in passed


def test_an_unrecognised_failure_points_at_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "preview.txt"
    log.write_text("error: could not connect to the cluster\n")
    assert main(["staging", "failure", str(log)]) == 0
    out = capsys.readouterr().out
    assert "No policy or setting problem was recognised" in out
    assert "could not connect to the cluster" in out

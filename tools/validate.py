"""Checks on rendered manifests: the Kubernetes OpenAPI schema (strict), and checkov's policies.

Schema validation uses kubernetes-validate in strict mode (unknown fields are
errors) for the oldest and newest Kubernetes minors the project supports.
checkov runs from its own virtualenv (it pins packaging<24, pulumi needs
newer), fully offline, with the skips listed in .checkov.yaml.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import kubernetes_validate
import kubernetes_validate.utils

from tools.manifests import Manifest
from tools.stack_config import REPO_ROOT

SUPPORTED_KUBERNETES = ("1.31.0", "1.37.0")
"""Oldest and newest Kubernetes versions the manifests must validate against."""

# kubernetes-validate reads and parses a schema file and its large _definitions.json again for every manifest
# (about 20 ms each). They never change while we run: parse each once. Ten times faster on every stack.
if not hasattr(kubernetes_validate.utils.schema_contents, "cache_info"):
    kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
        kubernetes_validate.utils.schema_contents
    )

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = REPO_ROOT / ".checkov.yaml"


CUSTOM_RESOURCE_GROUPS = frozenset({"monitoring.coreos.com"})
"""API groups of CRDs the program may create (the Prometheus Operator's ServiceMonitor): Kubernetes' own schemas
do not cover them, so the schema check leaves them to the component tests, which pin their whole spec."""


def schema_problems(manifests: Iterable[Manifest], versions: Iterable[str] = SUPPORTED_KUBERNETES) -> list[str]:
    """Every schema violation, as '<file> (k8s <version>): <message>'; empty when all are valid."""
    problems = []
    for manifest in manifests:
        if str(manifest.body.get("apiVersion", "")).split("/")[0] in CUSTOM_RESOURCE_GROUPS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(manifest.body, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                problems.append(f"{manifest.filename} (k8s {version}): {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{manifest.filename} (k8s {version}): no schema for {error}")
    return problems


def checkov_problems(directory: Path) -> list[str]:
    """Every failed checkov Kubernetes check on the manifests under `directory`, by path relative to it."""
    if not CHECKOV.exists():
        return [f"checkov is not installed at {CHECKOV.relative_to(REPO_ROOT)}; run `make setup`"]
    env = {
        **os.environ,
        "BC_SKIP_MAPPING": "TRUE",
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "LOG_LEVEL": "ERROR",
    }
    env.pop("BC_API_KEY", None)
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(directory),
            "--framework",
            "kubernetes",
            "--config-file",
            str(CHECKOV_CONFIG),
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if result.returncode not in (0, 1):
        return [f"checkov failed to run (exit {result.returncode}): {result.stderr.strip()[-2000:]}"]
    try:
        report = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        return [f"checkov printed no JSON report: {result.stdout[-2000:]} {result.stderr[-2000:]}"]
    reports = report if isinstance(report, list) else [report]
    problems = []
    for item in reports:
        for failed in item.get("results", {}).get("failed_checks", []):
            where = str(failed.get("file_path", "?")).lstrip("/")  # relative to `directory`
            problems.append(f"{where}: {failed['check_id']} {failed['check_name']} ({failed.get('resource')})")
    return sorted(problems)

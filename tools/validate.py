"""Checks on rendered manifests: the Kubernetes OpenAPI schema (strict), and checkov's policies.

Schema validation uses kubernetes-validate's strict schemas (unknown fields
are errors) for the oldest and newest Kubernetes minors the project supports.
checkov runs from its own virtualenv (it pins packaging<24, pulumi needs
newer), fully offline, with the skips listed in .checkov.yaml.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils
from packaging.version import Version
from referencing import Registry, Resource

from tools.manifests import Manifest
from tools.stack_config import REPO_ROOT

SUPPORTED_KUBERNETES = ("1.31.0", "1.37.0")
"""Oldest and newest Kubernetes versions the manifests must validate against."""

CHECKOV_VENV = REPO_ROOT / ".venv-checkov"
CHECKOV_PYTHON = CHECKOV_VENV / "bin" / "python"
CHECKOV_RUNNER = Path(__file__).with_name("checkov_runner.py")
CHECKOV_CONFIG = REPO_ROOT / ".checkov.yaml"


CUSTOM_RESOURCE_GROUPS = frozenset({"monitoring.coreos.com", "gateway.networking.k8s.io"})
"""API groups of CRDs the program may create (the Prometheus Operator's, the Gateway API's): Kubernetes' own schemas
do not cover them, so the schema check leaves them to the component tests, which pin their whole spec, and to the
cluster e2e, whose API server holds them to their real CRDs."""


class UnknownKindError(LookupError):
    """kubernetes-validate ships no schema for this kind and apiVersion at this Kubernetes version."""


@functools.cache
def _schema_file(filename: str) -> Any:
    return kubernetes_validate.utils.schema_contents(filename, "")


@functools.cache
def strict_validator(kind: str, api_version: str, kubernetes: str) -> jsonschema.Draft202012Validator:
    """kubernetes-validate's strict schema for `kind` at one Kubernetes version, as a validator built once.

    `kubernetes_validate.validate` takes the same schema files, but reads them and builds a new reference
    registry for every manifest, so every `$ref` into the large definitions file is resolved again (about
    3 ms a manifest). Kept, the registry resolves each reference once: 2.5 times faster on 400 manifests.
    The schema chosen is the library's: the newest it ships that is not newer than `kubernetes`.
    """
    wanted = Version(kubernetes_validate.utils.major_minor(kubernetes))
    shipped = [v for v in kubernetes_validate.utils.all_versions() if Version(v) <= wanted]
    if not shipped:
        raise UnknownKindError(f"kubernetes-validate has no schemas for Kubernetes {kubernetes} or older")
    directory = f"kubernetes-json-schema/v{shipped[-1]}-local-strict"
    # As kubernetes-validate names its files: apps/v1 -> apps-v1, networking.k8s.io/v1 -> networking-v1.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = _schema_file(f"{directory}/{kind.lower()}-{group_version}.json")
    except FileNotFoundError:
        raise UnknownKindError(f"no schema for {kind} {api_version} in Kubernetes {kubernetes}") from None
    definitions = _schema_file(f"{directory}/_definitions.json")
    registry: Registry[Any] = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_problems(manifests: Iterable[Manifest], versions: Iterable[str] = SUPPORTED_KUBERNETES) -> list[str]:
    """Every schema violation, as '<file> (k8s <version>): <message>'; empty when all are valid."""
    problems = []
    for manifest in manifests:
        kind, api_version = str(manifest.body.get("kind", "")), str(manifest.body.get("apiVersion", ""))
        if api_version.split("/", maxsplit=1)[0] in CUSTOM_RESOURCE_GROUPS:
            continue
        for version in versions:
            try:
                error = jsonschema.exceptions.best_match(
                    strict_validator(kind, api_version, version).iter_errors(manifest.body)
                )
            except UnknownKindError as unknown:
                problems.append(f"{manifest.filename} (k8s {version}): {unknown}")
                continue
            if error is not None:
                path = ".".join(str(part) for part in error.path)
                problems.append(f"{manifest.filename} (k8s {version}): {path}: {error.message}")
    return problems


@dataclass(frozen=True)
class CheckovFinding:
    """One failed check on a file (`path`, relative to the scanned directory), or checkov's own failure (no path)."""

    path: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path is not None else self.message


class CheckovScan:
    """One checkov run, started before there is anything to scan so that its slow import overlaps other work.

    Create it first, `scan` a directory once the manifests are written, then read `problems`. Use it as a
    context manager: leaving it ends checkov if it still runs (no scan was asked for, or an error came
    first), so that it never outlives the caller.
    """

    TIMEOUT_SECONDS = 600

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._directory: Path | None = None
        if not CHECKOV_PYTHON.exists():
            return
        env = {
            **os.environ,
            "BC_SKIP_MAPPING": "TRUE",
            "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
            "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
            "LOG_LEVEL": "ERROR",
        }
        env.pop("BC_API_KEY", None)
        self._process = subprocess.Popen(
            [str(CHECKOV_PYTHON), str(CHECKOV_RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def __enter__(self) -> CheckovScan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scan(self, directory: Path) -> None:
        """Start checking the manifests under `directory`; returns at once."""
        if self._directory is not None:
            raise RuntimeError(f"this checkov run already scans {self._directory}")
        self._directory = directory
        if self._process is None or self._process.stdin is None:
            return
        argv = [
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
        ]
        try:
            self._process.stdin.write(json.dumps(argv) + "\n")
            self._process.stdin.flush()  # `problems` closes stdin, through communicate()
        except BrokenPipeError:  # checkov died while importing; `problems` reports its stderr
            pass

    def problems(self) -> list[CheckovFinding]:
        """Every failed checkov Kubernetes check under the scanned directory, or why checkov itself failed."""
        if self._directory is None:
            raise RuntimeError("nothing to report: call scan(directory) first")
        if self._process is None:
            return [
                CheckovFinding(
                    None, f"checkov is not installed in {CHECKOV_VENV.relative_to(REPO_ROOT)}; run `make setup`"
                )
            ]
        try:
            stdout, stderr = self._process.communicate(timeout=self.TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.close()
            return [CheckovFinding(None, f"checkov did not finish within {self.TIMEOUT_SECONDS} s")]
        if self._process.returncode not in (0, 1):
            return [
                CheckovFinding(
                    None, f"checkov failed to run (exit {self._process.returncode}): {stderr.strip()[-2000:]}"
                )
            ]
        try:
            report = json.loads(stdout or "{}")
        except json.JSONDecodeError:
            return [CheckovFinding(None, f"checkov printed no JSON report: {stdout[-2000:]} {stderr[-2000:]}")]
        reports = report if isinstance(report, list) else [report]
        found = []
        for item in reports:
            for failed in item.get("results", {}).get("failed_checks", []):
                where = str(failed.get("file_path", "?")).lstrip("/")  # relative to the scanned directory
                check = f"{failed['check_id']} {failed['check_name']} ({failed.get('resource')})"
                found.append(CheckovFinding(where, check))
        return sorted(found, key=str)

    @property
    def exit_status(self) -> int | None:
        """checkov's exit status once it has ended; None while it runs or when it is not installed."""
        return None if self._process is None else self._process.poll()

    def close(self) -> None:
        """End the process now: checkov has nothing left that anyone will read."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.kill()
        process.communicate()

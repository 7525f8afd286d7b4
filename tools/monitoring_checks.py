"""Prometheus's own rule and PromQL parser and Grafana's dashboard schema, called from Python (the Go programs
toolchain/promcheck and toolchain/grafanacheck, built by `make promcheck`).

Rule files are checked as Prometheus loads them (rulefmt: groups, rule names,
`for`, label and annotation templates, and every expression); a dashboard's
queries as PromQL once Grafana's variables are replaced. Both answers name the
metrics the expressions read, so the tests can hold them to what is exported.
A dashboard's JSON model is decoded strictly by the Grafana Foundation SDK.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localcluster.paths import GRAFANACHECK, PROMCHECK

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
"""Grafana's built-in range variables, replaced by a duration as Grafana does before sending a query."""


@dataclass(frozen=True)
class PromCheck:
    """What Prometheus's parser said: its errors (none when Prometheus would load it) and the metrics read."""

    errors: tuple[str, ...]
    metrics: frozenset[str]


def _answer(program: Path, arguments: list[str], stdin: str | None = None) -> dict[str, Any]:
    """Run one of the checkers; its JSON answer (exit 1 means it found errors, which the answer lists)."""
    if not program.exists():
        raise FileNotFoundError(f"{program} is missing: run `make promcheck` (Go builds it from toolchain/)")
    done = subprocess.run([str(program), *arguments], input=stdin, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"{program.name} {arguments[0]} exited {done.returncode}: {done.stderr}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _run(arguments: list[str], stdin: str | None = None) -> PromCheck:
    answer = _answer(PROMCHECK, arguments, stdin)
    return PromCheck(tuple(answer["errors"]), frozenset(answer["metrics"]))


def check_rule_groups(groups: list[dict[str, Any]]) -> PromCheck:
    """Check a PrometheusRule's `spec.groups` as the rule file Prometheus (through its operator) loads."""
    with tempfile.TemporaryDirectory() as directory:
        rules = Path(directory) / "rules.yaml"
        rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        return _run(["rules", str(rules)])


def check_expressions(expressions: list[str]) -> PromCheck:
    """Check PromQL expressions (a dashboard's queries), Grafana's range variables replaced first."""
    return _run(["exprs"], json.dumps([_without_grafana_variables(expression) for expression in expressions]))


def _without_grafana_variables(expression: str) -> str:
    for variable, duration in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, duration)
    return expression


def recorded_names(groups: list[dict[str, Any]]) -> frozenset[str]:
    """The series the groups' recording rules write (which their alerts may read)."""
    return frozenset(rule["record"] for group in groups for rule in group["rules"] if "record" in rule)


def check_dashboard(model: dict[str, Any]) -> tuple[str, ...]:
    """What Grafana's dashboard schema refuses in `model` (unknown or missing fields, wrong types); none if valid."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "dashboard.json"
        path.write_text(json.dumps(model))
        return tuple(_answer(GRAFANACHECK, [str(path)])["errors"])

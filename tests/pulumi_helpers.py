"""Helpers for tests that run Pulumi code under the shared mocks (tools.mocks)."""

from __future__ import annotations

import copy
import json
import runpy
from collections.abc import Callable, Mapping
from typing import Any

from tools.mocks import KubernetesMocks, ProgramRun, RecordedResource, is_secret_wrapper, run_program
from tools.stack_config import REPO_ROOT

PROJECT = "webapp"

VALID_CONFIG: dict[str, Any] = {
    "image": {"repository": "ghcr.io/example/webapp", "tag": "1.4.2"},
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "secretKeys": ["DATABASE_PASSWORD"],
}
TEST_SECRETS = {"DATABASE_PASSWORD": "correct-horse-battery-staple"}


def config_values(
    raw: Mapping[str, Any], secrets: Mapping[str, str] | None = None, mark_secret: bool = True
) -> tuple[dict[str, str], list[str]]:
    """Config as the CLI passes it: `webapp:`-prefixed keys, objects as JSON text; plus the secret keys.

    `mark_secret=False` hands the secrets over as plain config, as when someone
    wrote them into the stack file without --secret.
    """
    values = {f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()}
    secret_keys = []
    if secrets is not None:
        values[f"{PROJECT}:secrets"] = json.dumps(dict(secrets))
        if mark_secret:
            secret_keys.append(f"{PROJECT}:secrets")
    return values, secret_keys


def valid_config(**overrides: Any) -> dict[str, Any]:
    """A deep copy of VALID_CONFIG with top-level keys replaced."""
    raw = copy.deepcopy(VALID_CONFIG)
    raw.update(overrides)
    return raw


def run_main(
    raw: Mapping[str, Any],
    secrets: Mapping[str, str] | None = TEST_SECRETS,
    stack: str = "test",
    mocks: KubernetesMocks | None = None,
    mark_secret: bool = True,
) -> ProgramRun:
    """Run the real __main__.py under mocks with this config."""
    values, secret_keys = config_values(raw, secrets, mark_secret)
    return run_program(
        lambda: runpy.run_path(str(REPO_ROOT / "__main__.py"), run_name="__main__"),
        project=PROJECT,
        stack=stack,
        config=values,
        secret_keys=secret_keys,
        mocks=mocks,
    )


def run_components(build: Callable[[], object], stack: str = "test") -> ProgramRun:
    """Run `build` (which constructs components) under mocks, with no config."""
    return run_program(build, project=PROJECT, stack=stack, config={})


def kube(run: ProgramRun, kind: str) -> list[RecordedResource]:
    """Every recorded Kubernetes object of `kind`."""
    return [r for r in run.resources if r.is_kubernetes and r.kind == kind]


def only(run: ProgramRun, kind: str) -> RecordedResource:
    """The single recorded Kubernetes object of `kind` (fails if there are 0 or several)."""
    found = kube(run, kind)
    assert len(found) == 1, f"expected one {kind}, found {[r.object_name for r in found]}"
    return found[0]


def unwrap(value: Any) -> Any:
    """The plaintext inside a secret wrapper, or the value itself."""
    return value["value"] if is_secret_wrapper(value) else value


def container(deployment: RecordedResource) -> dict[str, Any]:
    """The first (only) container of a Deployment's pod template."""
    containers: list[dict[str, Any]] = deployment.inputs["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]

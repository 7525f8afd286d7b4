"""Helpers for tests that run Pulumi code under the shared mocks (tools.mocks)."""

from __future__ import annotations

import functools
import runpy
from collections.abc import Callable, Mapping
from typing import Any

from harness.stack_values import TEST_SECRETS, config_values
from tools.mocks import KubernetesMocks, ProgramRun, RecordedResource, is_secret_wrapper, run_program
from tools.render import Rendered, render_stack
from tools.stack_config import REPO_ROOT
from webapp_platform.config.app_config import PROJECT


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


@functools.cache
def committed_stack(stack: str) -> Rendered:
    """A committed stack file rendered once per test process, shared by every test that only reads it.

    A test that changes what it gets deep-copies first; one that needs a fresh render calls `render_stack`.
    """
    return render_stack(stack)

"""What the canary driver needs of a stack: its settings, its deployed canary, config writes, `pulumi up`, and the
recovery of a killed update. `tools.canary_automation.AutomationTarget` is the real one; the tests' fake keeps the
stack file, the Pulumi state and the cluster apart to check the driver leaves them agreeing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tools.canary_state import Release, Version
from webapp_platform.config.settings import StackSettings


class UpFailed(Exception):
    """A `pulumi up` (or the refresh that recovers one) failed; the message is the engine's."""


class PodsUnavailable(Exception):
    """The canary's pods could not be read from the Kubernetes API (its kubeconfig would not load, or the API
    refused or did not answer); the message names the cause."""


@dataclass(frozen=True)
class PodState:
    """One canary pod as the Kubernetes API shows it: its name, whether its Ready condition is True, and its
    containers' restarts summed."""

    name: str
    ready: bool
    restarts: int


class Target(Protocol):
    """The stack a canary runs on."""

    @property
    def state_dir(self) -> Path:
        """The directory beside the stack file where the driver keeps its release state and its lock."""

    def settings(self) -> StackSettings:
        """The stack's settings as its stack file holds them now."""

    def deployed_canary(self) -> Mapping[str, Any] | None:
        """The deployed stack's `canary` output (written by an `up` that finished), or None."""

    def canary_pods(self, namespace: str, selector: Mapping[str, str]) -> Sequence[PodState]:
        """The pods in `namespace` whose labels match `selector` (the canary's), as the cluster shows them now;
        raise PodsUnavailable naming the cause when the Kubernetes API cannot be asked or does not answer."""

    def set_release(self, release: Release, weight: int) -> None:
        """Write `canaryRelease` for `release` at `weight` into the stack's config."""

    def write_stable(self, version: Version) -> None:
        """Make `version` the stack file's stable version (its image and whole appConfig) and remove
        `canaryRelease`: idempotent, so a run killed part-way through it is finished by running it again."""

    def up(self) -> None:
        """`pulumi up`; raise UpFailed with the engine's message."""

    def recover(self, *, cancel_stale: bool) -> list[str]:
        """Undo what a killed run left behind: its update's lock (when `cancel_stale`), then its pending operations
        (by a refresh that clears them); say what was done."""

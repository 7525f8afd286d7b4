"""A canary release: the new version beside the stable one, a growing share of the traffic, judged by Prometheus.

`canary` is what a stack commits (whether its releases go through a canary, the steps, the analysis);
`canaryRelease` is the state of one release in progress, which `tools/canary.py` writes while it runs and removes
when it promotes or rolls back. A stack file at rest never holds a `canaryRelease`.
"""

from __future__ import annotations

import itertools

from pydantic import Field, field_validator, model_validator

from webapp_platform.config.app_config import checked_app_config
from webapp_platform.config.image import ImageSettings
from webapp_platform.config.types import EnvValue, SettingsModel

MAX_WEIGHT = 99
"""A step's largest weight: 100 would be the promotion, which replaces the stable version instead."""


class CanaryStep(SettingsModel):
    """One step of a canary: the share of requests the new version gets, and how long it is judged at that share."""

    weight: int = Field(ge=1, le=MAX_WEIGHT)
    """Percent of the requests routed to the canary."""
    seconds: int = Field(ge=1, le=86400)
    """How long the step lasts: the analysis checks the canary every analysis.intervalSeconds meanwhile."""


class CanaryAnalysis(SettingsModel):
    """How the canary is judged: against the stack's own objectives (metrics.availabilityObjective,
    latencyObjectiveSeconds and latencyObjectivePercent), by burn rate, one check per interval."""

    interval_seconds: int = Field(default=60, ge=1, le=3600)
    """The window of one check and the pause between checks: the canary's failed and slow shares over it."""
    burn_rate_threshold: float = Field(default=14.4, ge=1, le=1000)
    """A check fails when the canary spends an error budget this many times faster than the objective allows
    (14.4: the fast-burn alert's factor, 2 % of a 30-day budget in an hour)."""
    max_failed_checks: int = Field(default=0, ge=0, le=100)
    """Failed checks tolerated over the whole canary; one more rolls it back."""
    min_requests: int = Field(default=20, ge=1, le=1_000_000)
    """A check over fewer canary requests than this judges nothing (neither passes nor fails); a step whose every
    check saw too few requests fails, since nothing showed the canary works."""


def _default_steps() -> list[CanaryStep]:
    return [CanaryStep(weight=10, seconds=300), CanaryStep(weight=50, seconds=300)]


class CanarySettings(SettingsModel):
    """Whether the stack's releases go through a canary (`python -m tools.canary`), its steps and its analysis."""

    enabled: bool = False
    steps: list[CanaryStep] = Field(default_factory=_default_steps, min_length=1, max_length=10)
    """The weights, rising, each held for its seconds; then the promotion."""
    analysis: CanaryAnalysis = CanaryAnalysis()

    @field_validator("steps")
    @classmethod
    def _rising(cls, steps: list[CanaryStep]) -> list[CanaryStep]:
        weights = [step.weight for step in steps]
        if any(later <= earlier for earlier, later in itertools.pairwise(weights)):
            raise ValueError(f"the steps' weights {weights} must rise from one step to the next")
        return steps


class CanaryRelease(SettingsModel):
    """A release in progress (written by tools/canary.py, never by hand): its image, its plain config and the
    share of requests it gets now."""

    image: ImageSettings
    app_config: dict[str, EnvValue] = Field(default_factory=dict)
    """The release's appConfig, whole: its own immutable ConfigMap, so the stable pods keep theirs."""
    weight: int = Field(default=0, ge=0, le=MAX_WEIGHT)
    """Percent of the requests routed to it now (0 while it starts and when it is being taken out)."""

    @field_validator("app_config")
    @classmethod
    def _app_config(cls, value: dict[str, str]) -> dict[str, str]:
        return checked_app_config(value)

    @model_validator(mode="after")
    def _pinned(self) -> CanaryRelease:
        if self.image.digest is None:
            raise ValueError(
                "image.digest is required: a canary runs an image pinned by digest, as it will be promoted"
            )
        return self

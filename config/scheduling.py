"""Where the pods may run and how they spread: node selection, tolerations, affinity and zones."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from config.types import LabelKey, LabelValue, SettingsModel


class Toleration(SettingsModel):
    """One pod toleration, as Kubernetes takes it: lets the pods onto nodes with a matching taint."""

    key: LabelKey | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("operator Exists takes no value; leave value out or use operator Equal")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds applies to effect NoExecute only")
        return self


class SchedulingSettings(SettingsModel):
    """Where the pods may run and how they spread: across zones and across nodes."""

    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    """Node labels every pod's node must carry, e.g. a node pool."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints the pods tolerate, e.g. a dedicated node pool's."""
    zone_spread: Literal["preferred", "required"] = "preferred"
    """`required`: two pods never share a zone while another zone has fewer (needs zone-labelled nodes, as every
    cloud cluster has); `preferred`: spread when possible, and still schedule on nodes without zones."""

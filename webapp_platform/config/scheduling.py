"""Where the pods may run and how they spread: node selection, tolerations, affinity and zones."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from webapp_platform.config.rules import node_selection_problem, toleration_problem
from webapp_platform.config.types import DnsLabel, LabelKey, LabelValue, SettingsModel

Weight = Annotated[int, Field(ge=1, le=100)]
"""A preference's weight, as Kubernetes takes it: 1..100, the scheduler adds the weights a node satisfies."""


class Toleration(SettingsModel):
    """One pod toleration, as Kubernetes takes it: lets the pods onto nodes with a matching taint."""

    key: LabelKey | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        problem = toleration_problem(self.key, self.operator)
        if problem:
            raise ValueError(problem)
        if self.operator == "Exists" and self.value:
            raise ValueError("operator Exists takes no value; leave value out or use operator Equal")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds applies to effect NoExecute only")
        return self


def _requirement_problem(operator: str, values: list[str]) -> str | None:
    """What is wrong with a selector requirement's values for its operator, as the API server would refuse it."""
    if operator in ("In", "NotIn") and not values:
        return f"operator {operator} needs values"
    if operator in ("Exists", "DoesNotExist") and values:
        return f"operator {operator} takes no values; leave values out"
    if operator in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
        return f"operator {operator} needs exactly one integer value, e.g. values: ['4']"
    return None


class _Requirement(SettingsModel):
    """One condition on labels: a key, an operator and the values the operator needs."""

    key: LabelKey
    operator: str
    values: list[LabelValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> _Requirement:
        problem = _requirement_problem(self.operator, self.values)
        if problem:
            raise ValueError(problem)
        return self


class NodeSelectorRequirement(_Requirement):
    """One condition on a node's labels (Gt and Lt compare integers); never one that selects the control plane."""

    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]

    @model_validator(mode="after")
    def _not_the_control_plane(self) -> NodeSelectorRequirement:
        problem = node_selection_problem(self.key, self.operator)
        if problem:
            raise ValueError(problem)
        return self


class NodeSelectorTerm(SettingsModel):
    """Conditions a node must all meet."""

    match_expressions: list[NodeSelectorRequirement] = Field(min_length=1)


class NodeSelector(SettingsModel):
    """Terms of which a node must meet one."""

    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1)


class PreferredSchedulingTerm(SettingsModel):
    """A node preference and its weight."""

    weight: Weight
    preference: NodeSelectorTerm


class NodeAffinity(SettingsModel):
    """Which nodes the pods must, or would rather, run on."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = Field(default_factory=list)


class LabelSelectorRequirement(_Requirement):
    """One condition on a pod's labels."""

    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]


class LabelSelector(SettingsModel):
    """Which pods a term is about: labels and conditions they must all meet."""

    match_labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    @model_validator(mode="after")
    def _selects_something(self) -> LabelSelector:
        if not self.match_labels and not self.match_expressions:
            raise ValueError("an empty labelSelector selects every pod; give matchLabels or matchExpressions")
        return self


class PodAffinityTerm(SettingsModel):
    """Pods (by labels, in some namespaces) that must or must not share a topology domain with these pods."""

    label_selector: LabelSelector
    topology_key: LabelKey
    """The node label whose value is the domain, e.g. kubernetes.io/hostname or topology.kubernetes.io/zone."""
    namespaces: list[DnsLabel] = Field(default_factory=list)
    """Namespaces of those pods; the stack's own when empty."""


class WeightedPodAffinityTerm(SettingsModel):
    """A pod (anti-)affinity preference and its weight."""

    weight: Weight
    pod_affinity_term: PodAffinityTerm


class PodAffinity(SettingsModel):
    """Pod affinity or anti-affinity: terms required at scheduling, and weighted preferences."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = Field(default_factory=list)
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = Field(default_factory=list)


class Affinity(SettingsModel):
    """Kubernetes' pod affinity, field by field as a pod spec takes it (matchFields and namespaceSelector aside)."""

    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None

    def manifest(self) -> dict[str, object]:
        """The pod spec's `affinity`, in the API's own field names, without the empty parts."""
        return self.model_dump(by_alias=True, exclude_defaults=True)


class SchedulingSettings(SettingsModel):
    """Where the pods may run and how they spread: across zones and across nodes."""

    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    """Node labels every pod's node must carry, e.g. a node pool; never the control plane's."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints the pods tolerate, e.g. a dedicated node pool's."""
    affinity: Affinity | None = None
    """Node affinity, pod affinity and anti-affinity, as in a pod spec, for what nodeSelector cannot say."""
    zone_spread: Literal["preferred", "required"] = "preferred"
    """`required`: two pods never share a zone while another zone has fewer (needs zone-labelled nodes, as every
    cloud cluster has); `preferred`: spread when possible, and still schedule on nodes without zones."""

    @field_validator("node_selector")
    @classmethod
    def _not_the_control_plane(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [problem for key in sorted(value) if (problem := node_selection_problem(key))]
        if problems:
            raise ValueError("; ".join(problems))
        return value

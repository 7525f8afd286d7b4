"""Turn the resources recorded under mocks into plain, stable Kubernetes manifests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tools.mocks import RecordedResource, is_secret_wrapper
from tools.stack_config import MASKED

KIND_ORDER = [
    "Namespace",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Ingress",
]


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object, ready to write as YAML."""

    kind: str
    name: str
    body: dict[str, Any]

    @property
    def filename(self) -> str:
        """File name that sorts in apply order: 03-service-webapp-svc-1a2b3c4d.yaml."""
        rank = KIND_ORDER.index(self.kind) if self.kind in KIND_ORDER else len(KIND_ORDER)
        return f"{rank:02d}-{self.kind.lower()}-{self.name}.yaml"


def _mask(value: Any) -> Any:
    """Every leaf of a secret becomes MASKED, keeping its keys (so reviewers see which secrets exist)."""
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item) for item in value]
    return MASKED


def _plain(value: Any) -> Any:
    """Unwrap secrets (masked), turn whole floats back into ints, sort mapping keys."""
    if is_secret_wrapper(value):
        return _mask(_plain(value["value"]))
    if isinstance(value, dict):
        return {key: _plain(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_manifest(resource: RecordedResource) -> Manifest:
    """The object as `kubectl apply` would take it: apiVersion, kind, metadata (with its name), the rest."""
    state = _plain(resource.state)
    body: dict[str, Any] = {"apiVersion": state.pop("apiVersion"), "kind": state.pop("kind")}
    body["metadata"] = state.pop("metadata")
    body.update(state)
    return Manifest(kind=body["kind"], name=body["metadata"]["name"], body=body)


def to_manifests(resources: Iterable[RecordedResource]) -> list[Manifest]:
    """Manifests of the Kubernetes objects among `resources`, in apply order then by name."""
    manifests = [to_manifest(r) for r in resources if r.is_kubernetes]
    return sorted(manifests, key=lambda m: m.filename)

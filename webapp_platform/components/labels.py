"""Kubernetes recommended labels, and the stable subset used in selectors.

Selectors are immutable on a Deployment and must keep matching pods across
releases, so they never include the version. The version label belongs to
the workload alone (the Deployment and its pods): on the ConfigMap, Service
or Ingress it would make every release touch every object, and a new image
tag would no longer be a Deployment update only.
"""

from __future__ import annotations

MANAGED_BY = "pulumi"
VERSION_LABEL = "app.kubernetes.io/version"
TRACK_LABEL = "track"
"""Which release a workload is: `canary` on a canary's objects (none on the stable ones, whose selector predates it).
Part of the canary's selector, so the stable Deployment's pods and the canary's never mix."""


def selector_labels(name: str, instance: str) -> dict[str, str]:
    """The labels that identify one service's pods for its whole life."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}


def selector_of(labels: dict[str, str]) -> dict[str, str]:
    """The selector labels within a service's `standard_labels` (and its track, a canary's)."""
    keys = ("app.kubernetes.io/name", "app.kubernetes.io/instance", TRACK_LABEL)
    return {key: labels[key] for key in keys if key in labels}


def standard_labels(name: str, instance: str, component: str, part_of: str) -> dict[str, str]:
    """The recommended labels every object of the service carries: selector ones, component, part-of, managed-by."""
    return {
        **selector_labels(name, instance),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": part_of,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def workload_labels(labels: dict[str, str], version: str) -> dict[str, str]:
    """`labels` plus the version, for the Deployment and its pod template only."""
    return {**labels, VERSION_LABEL: version}

"""Kubernetes recommended labels, and the stable subset used in selectors.

Selectors are immutable on a Deployment and must keep matching pods across
releases, so they never include the version.
"""

from __future__ import annotations

MANAGED_BY = "pulumi"


def selector_labels(name: str, instance: str) -> dict[str, str]:
    """The labels that identify one service's pods for its whole life."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}


def standard_labels(name: str, instance: str, version: str, component: str, part_of: str) -> dict[str, str]:
    """All six recommended labels: the selector ones plus version, component, part-of, managed-by."""
    return {
        **selector_labels(name, instance),
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": part_of,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }

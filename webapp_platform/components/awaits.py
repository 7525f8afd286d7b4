"""The annotations the Pulumi Kubernetes provider reads: how long it awaits a rollout, and that it takes back fields
someone changed by hand. Every component whose objects a rollout waits on imports them from here."""

from __future__ import annotations

# Pulumi owns the Deployment: a field someone changed by hand (`kubectl scale`, `kubectl edit`) would
# otherwise make every later `pulumi up` fail with a server-side apply conflict until someone cleans it
# up. With this the next `up` takes the field back (the drift workflow has reported it by then).
FORCE_APPLY = {"pulumi.com/patchForce": "true"}


def rollout_await(timeout_seconds: int) -> dict[str, str]:
    """The provider's await timeout for an object a rollout waits on (Deployment ready, Service endpoints, Ingress
    address), so that `pulumi up` fails after `rolloutTimeoutSeconds` on a create as on an update."""
    return {"pulumi.com/timeoutSeconds": str(timeout_seconds)}

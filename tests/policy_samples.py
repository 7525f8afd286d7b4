"""Sample Kubernetes objects the policy tests share: a compliant container and the selector labels."""

from __future__ import annotations

from typing import Any

CONTAINER: dict[str, Any] = {
    "name": "web",
    "image": "ghcr.io/example/webapp:1.4.2",
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 10001,
    },
}
LABELS = {"app.kubernetes.io/name": "webapp", "app.kubernetes.io/instance": "webapp-prod"}

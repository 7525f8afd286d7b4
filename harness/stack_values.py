"""Stack config values as the Pulumi CLI hands them to a program: a valid base config, test secrets, the encoding."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from webapp_platform.config.app_config import PROJECT

VALID_CONFIG: dict[str, Any] = {
    "image": {"repository": "ghcr.io/example/webapp", "tag": "1.4.2"},
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "secretKeys": ["DATABASE_PASSWORD"],
}
TEST_SECRETS = {"DATABASE_PASSWORD": "correct-horse-battery-staple"}


def config_values(
    raw: Mapping[str, Any], secrets: Mapping[str, str] | None = None, mark_secret: bool = True
) -> tuple[dict[str, str], list[str]]:
    """Config as the CLI passes it: `webapp:`-prefixed keys, objects as JSON text; plus the secret keys.

    `mark_secret=False` hands the secrets over as plain config, as when someone
    wrote them into the stack file without --secret.
    """
    values = {f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()}
    secret_keys = []
    if secrets is not None:
        values[f"{PROJECT}:secrets"] = json.dumps(dict(secrets))
        if mark_secret:
            secret_keys.append(f"{PROJECT}:secrets")
    return values, secret_keys


def valid_config(**overrides: Any) -> dict[str, Any]:
    """A deep copy of VALID_CONFIG with top-level keys replaced."""
    raw = copy.deepcopy(VALID_CONFIG)
    raw.update(overrides)
    return raw

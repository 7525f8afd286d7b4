"""docs/settings.md's table lists exactly the settings `StackSettings` accepts, by the keys a stack file uses."""

from __future__ import annotations

import re

from pydantic import BaseModel

from tools.stack_config import REPO_ROOT
from webapp_platform.config.settings import StackSettings

SECRETS_ROW = "secrets.<NAME>"
"""Secret values: read apart from StackSettings (`Settings.secrets`), documented in the same table."""


def _readme_keys() -> set[str]:
    """The setting keys in the first cell of each row of the settings reference's table (the page up to its first
    subsection)."""
    text = (REPO_ROOT / "docs" / "settings.md").read_text()
    section = text[: text.index("\n## ")]
    keys: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first, *others = re.findall(r"`([^`]+)`", line.split("|")[1])
        keys.add(first)
        parent = first.rsplit(".", 1)[0] if "." in first else ""
        for other in others:  # `resources.requests.cpu` / `.memory`, `autoscaling.minReplicas` / `maxReplicas`
            keys.add(f"{parent}.{other.lstrip('.')}" if parent else other)
    return keys


def _model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every leaf setting of `model`, by its camelCase key, nested models flattened with dots."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _model_keys(annotation, f"{key}.")
        else:
            keys.add(key)
    return keys


def test_the_readme_settings_table_is_stacksettings() -> None:
    documented = _readme_keys() - {SECRETS_ROW}
    accepted = _model_keys(StackSettings)
    assert sorted(accepted - documented) == [], "settings docs/settings.md does not document"
    assert sorted(documented - accepted) == [], "docs/settings.md rows for settings that do not exist"
    assert SECRETS_ROW in _readme_keys()

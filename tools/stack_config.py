"""Read a stack's configuration from Pulumi.yaml and Pulumi.<stack>.yaml, as the CLI would hand it over.

Project-level values (`value`, else `default`) apply first and a stack file's
key replaces them whole. Values reach the program as strings, objects and
lists as JSON text. `secure:` values are never decrypted: they become
`MASKED` and their top-level key is marked secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
MASKED = "[secret]"


class StackConfigError(ValueError):
    """A project or stack file is missing or malformed."""


@dataclass(frozen=True)
class StackConfig:
    """One stack's configuration, in the shape Pulumi's runtime receives it."""

    project: str
    stack: str
    values: dict[str, str]
    """Full key (`webapp:replicas`) to its value as text."""
    secret_keys: list[str] = field(default_factory=list)
    """Full keys holding at least one secret."""
    placeholders: list[str] = field(default_factory=list)
    """Secret names the stack declares but does not hold, filled with `MASKED`."""

    def with_secrets(self, secrets: Mapping[str, str]) -> StackConfig:
        """A copy with `<project>:secrets.<NAME>` values supplied (as `pulumi config set --secret --path` would)."""
        key = f"{self.project}:secrets"
        merged = {**json.loads(self.values.get(key, "{}")), **secrets}
        return replace(
            self,
            values={**self.values, key: json.dumps(merged)},
            secret_keys=sorted({*self.secret_keys, key}),
            placeholders=[name for name in self.placeholders if name not in secrets],
        )

    def with_placeholder_secrets(self) -> StackConfig:
        """A copy where every name in secretKeys that has no value holds `MASKED`, for offline rendering."""
        declared = json.loads(self.values.get(f"{self.project}:secretKeys", "[]"))
        present = json.loads(self.values.get(f"{self.project}:secrets", "{}"))
        missing = [name for name in declared if isinstance(name, str) and name not in present]
        if not missing:
            return self
        return replace(self.with_secrets(dict.fromkeys(missing, MASKED)), placeholders=missing)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StackConfigError(f"{path.name} is not valid YAML: {error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise StackConfigError(f"{path.name} must hold a YAML mapping")
    return loaded


def _mask_secure(value: Any) -> tuple[Any, bool]:
    """Replace every {secure: ...} inside value with MASKED; say whether any was found."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return MASKED, True
        found = False
        masked = {}
        for key, item in value.items():
            masked[key], item_found = _mask_secure(item)
            found = found or item_found
        return masked, found
    if isinstance(value, list):
        results = [_mask_secure(item) for item in value]
        return [item for item, _ in results], any(found for _, found in results)
    return value, False


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _full_key(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _refuse_plain_secrets(filename: str, project: str, secrets: Any) -> None:
    """Every value under <project>:secrets must be `secure:`; the program itself cannot tell once one is."""
    if secrets is None:
        return
    if not isinstance(secrets, dict):
        raise StackConfigError(f"{filename}: {project}:secrets must be a map of NAME: secure value")
    plain = sorted(
        name for name, value in secrets.items() if not (isinstance(value, dict) and set(value) == {"secure"})
    )
    if plain:
        raise StackConfigError(
            f"{filename}: {', '.join(f'{project}:secrets.{name}' for name in plain)} holds plain text; "
            f"remove it and run `pulumi config set --secret --path '{project}:secrets.<NAME>' <value>`"
        )


def stack_names(root: Path = REPO_ROOT) -> list[str]:
    """Every stack with a Pulumi.<stack>.yaml file in `root`, sorted."""
    return sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in root.glob("Pulumi.*.yaml"))


def stack_file_config(stack: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    """The `config` mapping of Pulumi.<stack>.yaml exactly as written (keys as in the file, values as YAML gives them).

    `load_stack_config` builds on it; the tests and the e2e read a stack's committed settings through it.
    """
    stack_path = root / f"Pulumi.{stack}.yaml"
    if not stack_path.exists():
        raise StackConfigError(
            f"no stack file {stack_path.name}; stacks here: {', '.join(stack_names(root)) or 'none'}"
        )
    stack_config = _load_yaml(stack_path).get("config") or {}
    if not isinstance(stack_config, dict):
        raise StackConfigError(f"{stack_path.name}: 'config' must be a mapping")
    return stack_config


def load_stack_config(stack: str, root: Path = REPO_ROOT) -> StackConfig:
    """Merge project defaults and the stack file into the values the program will read."""
    project_file = _load_yaml(root / "Pulumi.yaml")
    project = project_file.get("name")
    if not isinstance(project, str):
        raise StackConfigError("Pulumi.yaml has no project name")
    stack_config = stack_file_config(stack, root)
    stack_path = root / f"Pulumi.{stack}.yaml"

    merged: dict[str, Any] = {}
    for key, declaration in (project_file.get("config") or {}).items():
        if isinstance(declaration, dict) and ({"value", "default", "type", "description"} & set(declaration)):
            if "value" in declaration:
                merged[_full_key(project, key)] = declaration["value"]
            elif "default" in declaration:
                merged[_full_key(project, key)] = declaration["default"]
        else:
            merged[_full_key(project, key)] = declaration
    for key, value in stack_config.items():
        merged[_full_key(project, key)] = value
    _refuse_plain_secrets(stack_path.name, project, merged.get(f"{project}:secrets"))

    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in merged.items():
        masked, is_secret = _mask_secure(value)
        values[key] = _as_text(masked)
        if is_secret:
            secret_keys.append(key)
    return StackConfig(project=project, stack=stack, values=values, secret_keys=sorted(secret_keys))

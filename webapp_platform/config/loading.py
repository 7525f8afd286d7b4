"""Loading a stack's settings: the Pulumi config as the runtime hands it over, decoded, validated, every problem named.

The models (what a stack may set) live in `config.settings`; this module turns
the runtime's flat `webapp:*` strings into them: structured values arrive as
JSON text and are decoded, pydantic's errors become one message per key
(`webapp:<key>: ...`), secret values stay Pulumi secrets, and `ConfigError`
lists every problem at once, before any resource exists.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any

import pulumi
from pydantic import BaseModel, ConfigDict, ValidationError

from webapp_platform.config.app_config import PROJECT
from webapp_platform.config.errors import ConfigError
from webapp_platform.config.rules import missing_digest_problem
from webapp_platform.config.settings import StackSettings


class LoadedStack(BaseModel):
    """One stack as the program reads it: its name, its validated settings, and the secret values (Pulumi
    secrets)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    """The stack's name (dev, staging, prod)."""
    settings: StackSettings
    secrets: dict[str, pulumi.Output[str]]
    """Secret app config: name -> value, each a Pulumi secret."""


def _structured_keys() -> frozenset[str]:
    """Top-level settings whose values are objects or lists: the CLI hands those over as JSON text."""
    keys = set()
    for name, field in StackSettings.model_fields.items():
        # `X | None` is structured when X is: look through the union.
        union = typing.get_origin(field.annotation) in (typing.Union, types.UnionType)
        for annotation in typing.get_args(field.annotation) if union else (field.annotation,):
            origin = typing.get_origin(annotation) or annotation
            if origin in (dict, list) or (isinstance(origin, type) and issubclass(origin, BaseModel)):
                keys.add(field.alias or name)
    return frozenset(keys)


_OBJECT_KEYS = _structured_keys()
_SECRETS_KEY = "secrets"


def read_raw_config(project: str = PROJECT) -> tuple[dict[str, Any], set[str]]:
    """Every `<project>:*` config value the runtime holds (JSON objects decoded), and which keys are secret."""
    from pulumi.runtime import config as runtime_config

    prefix = f"{project}:"
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    raw: dict[str, Any] = {}
    secret_keys: set[str] = set()
    env_secret_keys = set(runtime_config.get_config_secret_keys_env())
    for full_key in sorted(k for k in keys if k.startswith(prefix)):
        key = full_key[len(prefix) :]
        raw[key] = runtime_config.get_config(full_key)
        if runtime_config.is_config_secret(full_key) or full_key in env_secret_keys:
            secret_keys.add(key)
    return raw, secret_keys


def _decode(key: str, value: Any, problems: list[str]) -> Any:
    if (key in _OBJECT_KEYS or key == _SECRETS_KEY) and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            problems.append(f"{PROJECT}:{key}: {value!r} is not a YAML/JSON object")
    return value


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        top = str(error["loc"][0])
        known = ", ".join(sorted(field.alias or name for name, field in StackSettings.model_fields.items()))
        if len(error["loc"]) == 1:
            return f"{PROJECT}:{top} is not a known setting; known settings: {known}, secrets"
        return f"{PROJECT}:{location} is not a known field here"
    if error["type"] == "missing":
        return f"{PROJECT}:{location} is required but not set"
    if not location:  # a check across several keys
        return f"{PROJECT}: {message}"
    return f"{PROJECT}:{location}: {message}"


def parse_settings(stack: str, raw: Mapping[str, Any], secret_keys: set[str]) -> LoadedStack:
    """Validate raw config values; raise `ConfigError` listing every problem found."""
    problems: list[str] = []
    decoded = {key: _decode(key, value, problems) for key, value in raw.items()}
    secrets_raw = decoded.pop(_SECRETS_KEY, None)

    values: StackSettings | None = None
    try:
        values = StackSettings.model_validate(decoded)
    except ValidationError as error:
        problems.extend(_describe(e) for e in error.errors(include_url=False))  # type: ignore[arg-type]

    existing = decoded.get("existingSecret")
    secrets = _parse_secrets(
        stack,
        secrets_raw,
        _SECRETS_KEY in secret_keys,
        decoded.get("secretKeys"),
        existing=bool(existing),
        problems=problems,
    )
    for key in sorted(secret_keys - {_SECRETS_KEY}):
        problems.append(f"{PROJECT}:{key} is a secret, but only {PROJECT}:secrets.<NAME> may hold secrets")

    if values is not None:
        digest_problem = missing_digest_problem(stack, values.image.digest)
        if digest_problem:
            problems.append(f"{PROJECT}:image.digest: {digest_problem}")
    if problems or values is None:
        raise ConfigError(problems)
    return LoadedStack(name=stack, settings=values, secrets=secrets)


def parse_settings_only(raw: Mapping[str, Any]) -> StackSettings:
    """The settings of raw config values, secrets left aside (for tools that read a stack's settings outside a
    program, such as tools/canary.py); raise `ConfigError` listing every problem found."""
    problems: list[str] = []
    decoded = {key: _decode(key, value, problems) for key, value in raw.items() if key != _SECRETS_KEY}
    try:
        values = StackSettings.model_validate(decoded)
    except ValidationError as error:
        problems.extend(_describe(e) for e in error.errors(include_url=False))  # type: ignore[arg-type]
    if problems:
        raise ConfigError(problems)
    return values


def _parse_secrets(
    stack: str, raw: Any, is_secret: bool, declared: Any, *, existing: bool, problems: list[str]
) -> dict[str, pulumi.Output[str]]:
    required = [name for name in declared if isinstance(name, str)] if isinstance(declared, list) else []
    if existing:
        # The values live in a Secret the program does not manage; secretKeys only documents what it holds.
        if isinstance(raw, dict) and raw:
            keys = ", ".join(f"{PROJECT}:secrets.{name}" for name in sorted(raw))
            problems.append(
                f"{PROJECT}:existingSecret and {keys} are both set; keep the values in one place: "
                f"the existing Secret, or `pulumi config set --secret` (then remove existingSecret)"
            )
        return {}

    def how(name: str = "NAME") -> str:
        return f"pulumi config set --secret --path '{PROJECT}:secrets.{name}' <value> --stack {stack}"

    if raw is None:
        raw = {}
    elif not isinstance(raw, dict):
        problems.append(f"{PROJECT}:secrets must be a map of NAME: secret value, set with `{how()}`")
        return {}
    elif raw and not is_secret:
        problems.append(
            f"{PROJECT}:secrets holds plain text; remove it from the stack file and set each value with `{how()}`"
        )
    secrets: dict[str, pulumi.Output[str]] = {}
    for name in required:
        value = raw.get(name)
        if not isinstance(value, str) or not value:
            problems.append(f"{PROJECT}:secrets.{name} is missing (listed in secretKeys); set it with `{how(name)}`")
    for name, value in raw.items():
        if name not in required:
            problems.append(
                f"{PROJECT}:secrets.{name} is not listed in {PROJECT}:secretKeys; add it there or remove it"
            )
        elif isinstance(value, str) and value:
            secrets[name] = pulumi.Output.secret(value)
    return secrets


def load_settings() -> LoadedStack:
    """Read and validate the current stack's settings from the Pulumi runtime."""
    raw, secret_keys = read_raw_config()
    return parse_settings(pulumi.get_stack(), raw, secret_keys)

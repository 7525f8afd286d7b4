"""Compare the manifests the real provider renders with those of `make render`, object by object.

Auto-named objects carry a random suffix under the provider and a hash
suffix under the offline render, so names are compared without it, and every
reference to such a name (envFrom, the Ingress backend, the HPA target) is
rewritten the same way. Secret values are masked on both sides: the
provider's render mode writes them in clear text (base64), ours never does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tools.mocks import AUTONAMED_ANNOTATION

_SUFFIX = re.compile(r"^(?P<base>[a-z0-9-]+)-[0-9a-z]{8}$")

Key = tuple[str, str, str]
"""kind, namespace, name without its auto-name suffix."""


def load_rendered(directory: Path) -> list[dict[str, Any]]:
    """Every object the provider wrote under its render directory (CRDs and manifests)."""
    objects: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.yaml")):
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def _stem(body: dict[str, Any]) -> str:
    name = str(body["metadata"]["name"])
    annotations = body["metadata"].get("annotations") or {}
    match = _SUFFIX.match(name)
    if annotations.get(AUTONAMED_ANNOTATION) == "true" and match:
        return f"{match['base']}-*"
    return name


def _rewrite(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _rewrite(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, names) for item in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value


def _mask_secret_data(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("kind") != "Secret":
        return body
    masked = dict(body)
    values = {**(body.get("data") or {}), **(body.get("stringData") or {})}
    masked.pop("data", None)
    masked.pop("stringData", None)
    masked["secretKeys"] = sorted(values)
    return masked


def normalise(objects: Iterable[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Objects keyed by kind, namespace and suffix-free name, with references rewritten and secrets masked."""
    objects = list(objects)
    names = {str(body["metadata"]["name"]): _stem(body) for body in objects}
    normalised: dict[Key, dict[str, Any]] = {}
    for body in objects:
        rewritten = _mask_secret_data(_rewrite(body, names))
        key = (str(body["kind"]), str(body["metadata"].get("namespace", "")), _stem(body))
        normalised[key] = rewritten
    return normalised


def differences(engine: dict[Key, dict[str, Any]], offline: dict[Key, dict[str, Any]]) -> list[str]:
    """Human-readable differences between the engine's objects and the offline render's."""
    problems = [f"only the engine renders {key}" for key in sorted(engine.keys() - offline.keys())]
    problems += [f"only make render renders {key}" for key in sorted(offline.keys() - engine.keys())]
    for key in sorted(engine.keys() & offline.keys()):
        problems += [f"{key} {path}" for path in _diff(engine[key], offline[key], "")]
    return problems


def _diff(engine: Any, offline: Any, path: str) -> list[str]:
    if isinstance(engine, dict) and isinstance(offline, dict):
        found = []
        for key in sorted(engine.keys() | offline.keys()):
            found += _diff(engine.get(key), offline.get(key), f"{path}.{key}")
        return found
    if isinstance(engine, list) and isinstance(offline, list) and len(engine) == len(offline):
        found = []
        for index, (left, right) in enumerate(zip(engine, offline, strict=True)):
            found += _diff(left, right, f"{path}[{index}]")
        return found
    if engine != offline:
        return [f"{path}: engine {engine!r} != make render {offline!r}"]
    return []

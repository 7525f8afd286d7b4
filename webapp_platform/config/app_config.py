"""The rule for the app's plain configuration (`appConfig`, and a canary release's): which names may go in a
ConfigMap. Stated once, for both."""

from __future__ import annotations

from webapp_platform.config.rules import MANAGED_ENV, TEST_ROUTES_ENV, credential_problem, looks_secret
from webapp_platform.config.types import ENV_NAME, ENV_NAME_RULE

PROJECT = "webapp"
"""The Pulumi project, and the namespace of every stack setting (`webapp:<key>`)."""


def checked_app_config(value: dict[str, str]) -> dict[str, str]:
    """`value` when every name may be set through a ConfigMap, and no value holds a credential; else a ValueError
    naming each that may not, and why (never repeating a value)."""
    problems = []
    for name, text in value.items():
        credential = credential_problem(text)
        if not ENV_NAME.match(name):  # a key, so not the EnvName type (its error would point into the key)
            problems.append(f"{name!r} is not {ENV_NAME_RULE}")
        elif name == TEST_ROUTES_ENV:
            problems.append(
                f"{name} cannot be set through appConfig; the test routes are for test stacks only and are "
                "turned on by the setting enableTestRoutes, which the policy pack refuses"
            )
        elif name in MANAGED_ENV:
            problems.append(
                f"{name} is set by the Deployment itself (from {MANAGED_ENV[name]}), which would override "
                "appConfig; use that setting instead"
            )
        elif looks_secret(name) or credential:
            why = f"{name}'s value holds {credential}" if credential else f"{name} looks secret"
            problems.append(
                f"{why} and would land in a plain ConfigMap; "
                f"list it in secretKeys and set it with "
                f"`pulumi config set --secret --path '{PROJECT}:secrets.{name}' <value>`"
            )
    if problems:
        raise ValueError("; ".join(problems))
    return value

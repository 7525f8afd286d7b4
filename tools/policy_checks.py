"""The policy pack's checks run in this process, on what a program run under the mocks registered.

`pulumi preview --policy-pack policy` runs the pack through the engine; `make render` and the tests run the same
validation functions (policy/webapp_policies.py, every policy of the pack, the digest rule included) directly on the
rendered objects, so a settings change learns of a violation in the same second as the schema and checkov's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from policy.webapp_policies import RESOURCE_CHECKS, STACK_CHECKS, validate_images_by_digest
from tools.manifests import to_manifest
from tools.mocks import ProgramRun


@dataclass
class PolicyResource:
    """The part of pulumi_policy's ResourceValidationArgs the pack's validations read."""

    resource_type: str
    props: dict[str, Any]
    name: str = "res"
    urn: str = "urn:pulumi:test::webapp::res"


@dataclass
class PolicyStack:
    """The part of pulumi_policy's StackValidationArgs the pack's validations read."""

    resources: list[PolicyResource] = field(default_factory=list)


def violations(validate: Callable[..., None], args: Any) -> list[str]:
    """The messages one validation function reports on `args`."""
    found: list[str] = []
    validate(args, lambda message, urn=None: found.append(message))
    return found


def pack_violations(run: ProgramRun) -> list[str]:
    """Every violation the whole pack reports on what a program run registered.

    Each object as the pack sees it: the Pulumi type token the mocks recorded, and the object as rendered (names
    filled in, secrets masked). Every policy of the pack, not a hand-picked list.
    """
    resources = [PolicyResource(r.type, to_manifest(r).body, name=r.name) for r in run.resources if r.is_kubernetes]
    found = [v for resource in resources for _, check in RESOURCE_CHECKS.values() for v in violations(check, resource)]
    found += [v for _, check in STACK_CHECKS.values() for v in violations(check, PolicyStack(resources))]
    found += [v for resource in resources for v in violations(validate_images_by_digest, resource)]
    return found

"""Where every resource sits in each stack's tree, and the options that decide what `pulumi up` may do.

A changed URN without an alias is a delete and a create in a real `pulumi up`;
these tests (and the URN snapshots in test_snapshots.py) make such a change
fail loudly here. `e2e/test_upgrade.py` proves the aliases with the real engine.
"""

from __future__ import annotations

import pytest

from tests.pulumi_helpers import committed_stack
from tools.mocks import Registration
from tools.stack_config import stack_names

STACKS = stack_names()
ALIASED = {"webapp:index:AppConfig", "webapp:index:WebService", "webapp:index:WebIngress"}
"""The components that sat directly under the stack before WebApp existed."""
COMPONENTS = ALIASED | {"webapp:index:WebRoute", "webapp:index:WebMonitoring"}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _registrations(stack: str) -> list[Registration]:
    return committed_stack(stack).run.registrations


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_sits_in_the_webapp_tree(stack: str) -> None:
    registrations = _registrations(stack)
    stack_urn = f"urn:pulumi:{stack}::webapp::pulumi:pulumi:Stack::webapp-{stack}"
    (webapp,) = [r for r in registrations if r.type == "webapp:index:WebApp"]
    assert webapp.parent == stack_urn
    components = {r.urn for r in registrations if r.type in COMPONENTS}
    assert len(components) >= 2
    for registration in registrations:
        if registration.type in COMPONENTS:
            assert registration.parent == webapp.urn, registration.urn
        elif registration.type == "kubernetes:core/v1:Namespace":
            assert registration.parent == stack_urn
        elif registration.custom and registration.type.startswith("kubernetes:"):
            assert registration.parent in components, registration.urn


@pytest.mark.parametrize("stack", STACKS)
def test_the_components_keep_their_urns_from_before_the_webapp_tree(stack: str) -> None:
    # Before WebApp, the three components sat directly under the stack: the alias says so. The others came later.
    for registration in _registrations(stack):
        if registration.type in ALIASED:
            assert "<no parent>" in registration.aliases, registration.urn
        elif registration.type in COMPONENTS:
            assert registration.aliases == (), registration.urn


def test_the_autoscaler_owns_replicas_and_pulumi_owns_them_otherwise() -> None:
    autoscaled = {stack: _deployment_options(stack) for stack in STACKS}
    assert autoscaled["prod"] == ("spec.replicas",)
    assert autoscaled["staging"] == ()
    assert autoscaled["dev"] == ()


def _deployment_options(stack: str) -> tuple[str, ...]:
    (deployment,) = [r for r in _registrations(stack) if r.type == DEPLOYMENT]
    return deployment.ignore_changes


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_is_protected_or_replaced_delete_first_by_the_program(stack: str) -> None:
    # Stable names make the provider delete before replacing on its own; the program asks for nothing more.
    for registration in _registrations(stack):
        assert not registration.protect, registration.urn
        assert not registration.delete_before_replace, registration.urn

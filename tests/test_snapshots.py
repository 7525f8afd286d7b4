"""Snapshots of every stack's rendered manifests and resource URNs, so a pull request's diff shows what changes.

After an intended change: `make snapshots`, then commit tests/__snapshots__/.
"""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion

from tests.pulumi_helpers import committed_stack
from tools.render import dump_yaml
from tools.stack_config import stack_names


@pytest.mark.parametrize("stack", stack_names())
def test_rendered_manifests_match_snapshot(stack: str, snapshot: SnapshotAssertion) -> None:
    rendered = committed_stack(stack)
    assert {m.filename: dump_yaml(m.body) for m in rendered.manifests} == snapshot


@pytest.mark.parametrize("stack", stack_names())
def test_resource_urns_match_snapshot(stack: str, snapshot: SnapshotAssertion) -> None:
    # A URN change is a replacement in a real `pulumi up` unless an alias covers it: review it like a manifest.
    assert sorted(r.urn for r in committed_stack(stack).run.registrations) == snapshot

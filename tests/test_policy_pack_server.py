"""The policy pack as the Pulumi CLI runs it: `policy/__main__.py` serving the Analyzer gRPC protocol.

The CLI starts the pack, reads its port from stdout and calls GetAnalyzerInfo,
Analyze (per resource) and AnalyzeStack. This test does the same calls, so
the pack's wiring (names, mandatory enforcement, props proxies) is checked
without the CLI.
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policy.webapp_policies import DIGEST_POLICY, RESOURCE_CHECKS, STACK_CHECKS
from tests.policy_samples import CONTAINER, LABELS
from tools.stack_config import REPO_ROOT

MANDATORY = analyzer_pb2.EnforcementLevel.Value("MANDATORY")
DISABLED = analyzer_pb2.EnforcementLevel.Value("DISABLED")


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The running policy pack, and a gRPC client for it."""
    process = subprocess.Popen(
        [sys.executable, "__main__.py"],
        cwd=REPO_ROOT / "policy",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the policy pack printed no port within 30 s"
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


def _deployment(replicas: int, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "webapp-deploy-1", "namespace": "webapp-prod"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": LABELS},
            "template": {"metadata": {"labels": LABELS}, "spec": {"containers": [{**CONTAINER, **container}]}},
        },
    }


def test_the_pack_announces_its_policies_as_mandatory(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
    assert info.name == "webapp-kubernetes"
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels == {**dict.fromkeys([*RESOURCE_CHECKS, *STACK_CHECKS], MANDATORY), DIGEST_POLICY: DISABLED}


def test_a_compliant_deployment_passes(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    request = analyzer_pb2.AnalyzeRequest(
        type="kubernetes:apps/v1:Deployment",
        properties=_struct(_deployment(1)),
        urn="urn:pulumi:prod::webapp::kubernetes:apps/v1:Deployment::webapp-deploy",
        name="webapp-deploy",
    )
    assert list(analyzer.Analyze(request, timeout=10).diagnostics) == []


def test_a_careless_deployment_is_refused(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    careless = _deployment(1, image="ghcr.io/example/webapp:latest", resources={}, readinessProbe=None)
    request = analyzer_pb2.AnalyzeRequest(
        type="kubernetes:apps/v1:Deployment",
        properties=_struct(careless),
        urn="urn:pulumi:prod::webapp::kubernetes:apps/v1:Deployment::webapp-deploy",
        name="webapp-deploy",
    )
    diagnostics = analyzer.Analyze(request, timeout=10).diagnostics
    assert {d.policyName for d in diagnostics} == {
        "containers-set-requests-and-limits",
        "images-are-pinned",
        "deployments-have-readiness-probes",
    }
    assert {d.enforcementLevel for d in diagnostics} == {MANDATORY}


def test_replicas_without_a_pdb_fail_the_stack(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    deployment = analyzer_pb2.AnalyzerResource(
        type="kubernetes:apps/v1:Deployment",
        properties=_struct(_deployment(3)),
        urn="urn:pulumi:prod::webapp::kubernetes:apps/v1:Deployment::webapp-deploy",
        name="webapp-deploy",
    )
    diagnostics = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[deployment]), timeout=10)
    assert [d.policyName for d in diagnostics.diagnostics] == ["replicated-deployments-have-disruption-budgets"]

    pdb = analyzer_pb2.AnalyzerResource(
        type="kubernetes:policy/v1:PodDisruptionBudget",
        properties=_struct({"spec": {"maxUnavailable": 1, "selector": {"matchLabels": LABELS}}}),
        urn="urn:pulumi:prod::webapp::kubernetes:policy/v1:PodDisruptionBudget::webapp-pdb",
        name="webapp-pdb",
    )
    request = analyzer_pb2.AnalyzeStackRequest(resources=[deployment, pdb])
    assert list(analyzer.AnalyzeStack(request, timeout=10).diagnostics) == []

"""What each stack expects of its cluster (prerequisites/expected.py), and the check that names what is missing
(prerequisites/cluster.py): against the committed stacks, hostile settings, and a real HTTP server on loopback
answering as an API server would, reached through the official client and a kubeconfig."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from kubernetes import client, config

from harness.stack_values import TEST_SECRETS, valid_config
from prerequisites.cluster import METADATA_ONLY, MissingPrerequisites, api_lookup, find_missing, no_cluster, verify
from prerequisites.expected import Prerequisite, expected
from tests.pulumi_helpers import run_components, run_main
from tools.stack_config import stack_file_config
from webapp_platform.config.loading import parse_settings
from webapp_platform.config.settings import StackSettings


def _settings(stack: str, raw: dict[str, Any] | None = None) -> StackSettings:
    if raw is None:
        raw = {
            key.split(":", 1)[1]: value for key, value in stack_file_config(stack).items() if key.startswith("webapp:")
        }
    raw = {**raw, "secrets": dict(TEST_SECRETS)}
    return parse_settings(stack, raw, {"secrets"}).settings


def _whats(items: list[Prerequisite]) -> list[str]:
    return [item.what for item in items]


def test_each_committed_stack_expects_what_its_routing_and_monitoring_use() -> None:
    assert _whats(expected(_settings("dev"), "dev")) == [
        "CustomResourceDefinition gateways.gateway.networking.k8s.io",
        "CustomResourceDefinition httproutes.gateway.networking.k8s.io",
        "Gateway gateway/shared",
    ]
    assert _whats(expected(_settings("staging"), "staging")) == ["IngressClass nginx"]
    assert _whats(expected(_settings("prod"), "prod")) == [
        "IngressClass nginx",
        "CustomResourceDefinition servicemonitors.monitoring.coreos.com",
        "CustomResourceDefinition prometheusrules.monitoring.coreos.com",
    ]


def test_a_namespace_the_platform_provides_must_exist_with_its_tls_secret() -> None:
    tls = [{"secretName": "shop-tls", "hosts": ["shop.example.com"]}]
    raw = valid_config(
        namespace="shop",
        createNamespace=False,
        ingress={"enabled": True, "hosts": ["shop.example.com"], "className": "public", "tls": tls},
    )
    found = expected(_settings("test", raw), "test")
    assert _whats(found) == ["Namespace shop", "IngressClass public", "TLS Secret shop/shop-tls"]
    secret = found[-1]
    assert secret.path == "/api/v1/namespaces/shop/secrets/shop-tls"
    assert secret.setting == "webapp:ingress.tls[0].secretName"
    assert "kubectl create secret tls shop-tls -n shop" in secret.how


def test_a_tls_secret_cert_manager_writes_is_not_a_prerequisite() -> None:
    tls = [{"secretName": "shop-tls", "hosts": ["shop.example.com"]}]
    ingress = {
        "enabled": True,
        "hosts": ["shop.example.com"],
        "tls": tls,
        "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
    }
    found = expected(_settings("test", valid_config(namespace="shop", createNamespace=False, ingress=ingress)), "test")
    assert _whats(found) == ["Namespace shop"]


def test_a_gateway_without_a_namespace_is_looked_for_in_the_stacks_own() -> None:
    route = {"enabled": True, "gateway": {"name": "edge"}, "hostnames": ["shop.example.com"]}
    found = expected(_settings("test", valid_config(namespace="shop", httpRoute=route)), "test")
    assert found[-1].path == "/apis/gateway.networking.k8s.io/v1/namespaces/shop/gateways/edge"


def test_every_missing_piece_is_named_with_its_setting_and_how_to_provide_it() -> None:
    prerequisites = expected(_settings("dev"), "dev") + expected(_settings("prod"), "prod")
    present = {prerequisites[0].path}
    with pytest.raises(MissingPrerequisites) as raised:
        verify(prerequisites, lambda path: path in present)
    message = str(raised.value)
    assert "lacks 5 thing(s)" in message
    assert "nothing was created" in message
    for item in prerequisites[1:]:
        assert item.describe() in message
    assert "Gateway gateway/shared (needed by webapp:httpRoute.gateway): ask the platform team" in message


def test_what_cannot_be_read_is_a_warning_not_a_failure() -> None:
    prerequisites = expected(_settings("dev"), "dev")

    def lookup(path: str) -> bool | None:
        if "gateways/" in path:
            return None  # forbidden
        if "httproutes" in path:
            raise OSError("connection reset")
        return True

    missing, unverified = find_missing(prerequisites, lookup)
    assert missing == []
    assert [(u.prerequisite.what, u.reason) for u in unverified] == [
        ("CustomResourceDefinition httproutes.gateway.networking.k8s.io", "connection reset"),
        ("Gateway gateway/shared", "not allowed to read it"),
    ]


def test_no_cluster_under_mocks_so_the_program_renders_without_one() -> None:
    seen: list[bool] = []
    run_components(lambda: seen.append(no_cluster()))
    assert seen == [True]
    # The program itself, whose dev-like settings would need a Gateway: registered under mocks as before.
    route = {"enabled": True, "gateway": {"name": "absent"}, "hostnames": ["shop.example.com"]}
    assert run_main(valid_config(httpRoute=route)).resources


class _FakeApiServer(http.server.BaseHTTPRequestHandler):
    """Answers GETs by path from `answers` (status per path, 404 otherwise); records the Accept header."""

    answers: ClassVar[dict[str, int]] = {}
    accepts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.accepts.append(self.headers.get("Accept", ""))
        status = self.answers.get(self.path, 404)
        body = b'{"kind":"PartialObjectMetadata"}' if status == 200 else b'{"kind":"Status"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[tuple[type[_FakeApiServer], Path]]:
    """A loopback HTTP server and a kubeconfig naming it (token auth), for the real client."""
    handler = type("Handler", (_FakeApiServer,), {"answers": {}, "accepts": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    yield handler, kubeconfig
    server.shutdown()
    server.server_close()


def test_the_client_asks_for_metadata_only_and_maps_the_answers(api_server: tuple[Any, Path]) -> None:
    handler, kubeconfig = api_server
    handler.answers.update({"/there": 200, "/forbidden": 403, "/broken": 500})
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    lookup = api_lookup(client.ApiClient(configuration))
    assert lookup("/there") is True
    assert lookup("/absent") is False
    assert lookup("/forbidden") is None
    with pytest.raises(OSError, match="answered 500"):
        lookup("/broken")
    assert set(handler.accepts) == {METADATA_ONLY}

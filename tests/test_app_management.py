"""The management port's WSGI app, in-process: probes first, then /metrics, GET or HEAD only."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from werkzeug.test import Client

from app.management import MAX_CONNECTIONS, ManagementServer, management_app
from app.probes import Probes
from app.progress import ProgressTable, WSGIApp, slots_for
from app.shutdown_state import ShutdownState
from harness.clients import read_until_closed
from harness.http import get
from harness.processes import free_port


def _client() -> tuple[Client, ProgressTable]:
    registry = CollectorRegistry()
    Counter("sample_events", "A sample counter.", registry=registry).inc()
    progress = ProgressTable(slots_for(1), threads=2, stall_seconds=30)
    return Client(management_app(Probes("1.2.3", ShutdownState(), progress), registry)), progress


def test_probes_answer_first_and_readiness_waits_for_a_worker() -> None:
    client, progress = _client()
    assert client.get("/ready").status_code == 503
    progress.bind(progress.reserve(), pid=7)
    assert client.get("/ready").status_code == 200
    assert client.get("/healthz").json == {"status": "alive", "version": "1.2.3"}


def test_metrics_in_the_text_format_and_nothing_else() -> None:
    client, _ = _client()
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["Content-Type"].startswith("text/plain")
    assert "sample_events_total 1.0" in scrape.text
    assert client.get("/").status_code == 404
    for path in ("/metrics", "/healthz", "/nope"):
        refused = client.post(path)
        assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, HEAD")


@pytest.fixture
def serving() -> Iterator[Callable[[WSGIApp], ManagementServer]]:
    """Start management servers on free ports in this process; all are stopped at teardown."""
    servers: list[ManagementServer] = []

    def serve(app: WSGIApp) -> ManagementServer:
        server = ManagementServer("127.0.0.1", free_port(), app)
        server.start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop()


def _port(server: ManagementServer) -> int:
    return int(server._listener.getsockname()[1])


def test_idle_connections_cost_no_thread_and_never_delay_a_probe(
    serving: Callable[[WSGIApp], ManagementServer],
) -> None:
    _, progress = _client()
    progress.bind(progress.reserve(), pid=7)
    server = serving(management_app(Probes("1.2.3", ShutdownState(), progress), CollectorRegistry()))
    threads_before = threading.active_count()
    with ExitStack() as stack:
        for _ in range(480):
            stack.enter_context(socket.create_connection(("127.0.0.1", _port(server)), timeout=5))
        answers = [get(_port(server), "/ready", timeout=1.0) for _ in range(20)]
        assert [a.status for a in answers] == [200] * 20
        assert threading.active_count() == threads_before, "one selector thread, whatever the connections"


def test_beyond_its_bound_a_new_connection_evicts_the_oldest_idle_one(
    serving: Callable[[WSGIApp], ManagementServer],
) -> None:
    _, progress = _client()
    server = serving(management_app(Probes("1.2.3", ShutdownState(), progress), CollectorRegistry()))
    with ExitStack() as stack:
        idle = [
            stack.enter_context(socket.create_connection(("127.0.0.1", _port(server)), timeout=5))
            for _ in range(MAX_CONNECTIONS + 10)
        ]
        # The server closes the ten oldest (they read an end of stream) and keeps the rest open.
        assert [read_until_closed(client) for client in idle[:10]] == [b""] * 10
        assert get(_port(server), "/healthz", timeout=1.0).status == 200


def test_malformed_requests_and_failures_are_answered_in_json(
    serving: Callable[[WSGIApp], ManagementServer],
) -> None:
    def failing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise RuntimeError("the collector broke")

    server = serving(failing)
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=5) as client:
        client.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        head, _, body = read_until_closed(client).partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400"
    assert json.loads(body)["error"] == "bad_request"
    broken = get(_port(server), "/metrics")
    assert broken.status == 500
    assert json.loads(broken.body)["error"] == "internal_server_error"

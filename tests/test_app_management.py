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


def test_a_head_over_the_bound_is_refused_whole(serving: Callable[[WSGIApp], ManagementServer]) -> None:
    # The port read 8 KiB of a 70 KiB head, parsed that much and answered the probe 200; the rest, unread, turned
    # the close into a reset that could destroy the answer.
    _, progress = _client()
    progress.bind(progress.reserve(), pid=7)
    server = serving(management_app(Probes("1.2.3", ShutdownState(), progress), CollectorRegistry()))
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=5) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nX-Filler: " + b"a" * 70 * 1024 + b"\r\n\r\n")
        head, _, body = read_until_closed(client).partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"431", head
    assert json.loads(body)["error"] == "request_header_fields_too_large"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",  # a request line past the head bound: 414
        b"GET /ready HTTP/1.1\r\n" + b"X: " + b"y" * 9000 + b"\r\n\r\n",  # a header past the bound
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",  # a TLS hello
        b"GET /ready HTTP/9.9\r\n\r\n",
        b"GET /ready HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"\r\n\r\n",
        b"GET\r\n\r\n",
    ],
)
def test_no_request_stops_the_port_answering_the_next_probe(
    serving: Callable[[WSGIApp], ManagementServer], request_bytes: bytes
) -> None:
    _, progress = _client()
    progress.bind(progress.reserve(), pid=7)
    server = serving(management_app(Probes("1.2.3", ShutdownState(), progress), CollectorRegistry()))
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", _port(server)), timeout=5) as client:
            client.sendall(request_bytes)
            answer = read_until_closed(client)
        assert answer == b"" or answer.startswith(b"HTTP/1."), answer[:80]  # a blank request is just closed
        assert get(_port(server), "/ready", timeout=2.0).status == 200


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread is killed on purpose
def test_a_dead_serving_thread_is_replaced_by_the_next_start(
    serving: Callable[[WSGIApp], ManagementServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, progress = _client()
    progress.bind(progress.reserve(), pid=7)
    server = serving(management_app(Probes("1.2.3", ShutdownState(), progress), CollectorRegistry()))

    def broken_expire() -> None:
        raise SystemExit("a bug outside any one connection")  # a thread ends on it silently

    monkeypatch.setattr(server, "_expire", broken_expire)
    thread = server._thread
    assert thread is not None
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert get(_port(server), "/ready", timeout=1.0).status is None  # nobody answers any more
    monkeypatch.undo()
    server.start()  # what the master's loop does every second
    assert get(_port(server), "/ready", timeout=2.0).status == 200

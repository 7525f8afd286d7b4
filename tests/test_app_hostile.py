"""Clients that try to hurt the real server: slow and silent connections, odd methods, oversized and broken heads.

A slow client must cost a socket, never a request thread; no client may grow the metrics; every answer the
server gives, gunicorn's own included, is the app's JSON error.
"""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.metrics import OTHER_METHOD, STANDARD_METHODS
from app.worker import MAX_HEAD_BYTES
from harness.app_server import RunningServer
from harness.clients import HALF_A_HEAD, odd_methods, read_until_closed, send_methods, stalled_connections
from harness.processes import wait_until
from tests.conftest import StartServer

pytestmark = pytest.mark.slow


def _json_error(answer: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"Content-Type: application/json" in head, head
    return status, json.loads(body)


@pytest.mark.stress
def test_slow_and_silent_clients_cost_a_socket_never_a_thread(start_app: StartServer) -> None:
    # 2 workers x 4 threads: before, 8 half heads held every thread until the clients gave up.
    server = start_app(HEAD_TIMEOUT_SECONDS="60")
    server.wait_until_ready()
    with stalled_connections(server.port, 500, HALF_A_HEAD), stalled_connections(server.port, 500, b""):
        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(lambda _: server.get("/", timeout=5.0), range(100)))
        assert [o.status for o in outcomes] == [200] * 100, {o.error for o in outcomes}
        assert server.probe("/ready").status == 200
        assert server.probe("/healthz").status == 200


def test_a_late_head_gets_408_and_a_silent_connection_is_closed(start_app: StartServer) -> None:
    server = start_app(HEAD_TIMEOUT_SECONDS="1")
    server.wait_until_ready()
    with (
        stalled_connections(server.port, 1, HALF_A_HEAD) as [partial],
        stalled_connections(server.port, 1, b"") as [silent],
    ):
        status, error = _json_error(read_until_closed(partial))
        assert (status, error["error"]) == (408, "request_timeout")
        assert "did not arrive within 1 s" in error["message"]
        assert read_until_closed(silent) == b"", "nothing was asked, so nothing is answered"
    assert '"status": 408' in server.stdout()


def test_a_head_sent_a_byte_at_a_time_is_answered(start_app: StartServer) -> None:
    # The end of the head (CRLF CRLF) arrives split over several reads: the search must span them.
    server = start_app(HEAD_TIMEOUT_SECONDS="60")
    server.wait_until_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in b"GET / HTTP/1.1\r\nHost: webapp\r\nConnection: close\r\n\r\n":
            client.sendall(bytes([byte]))
            time.sleep(0.002)
        answer = read_until_closed(client)
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]


def test_an_oversized_head_gets_431_without_waiting_for_its_end(start_app: StartServer) -> None:
    server = start_app(HEAD_TIMEOUT_SECONDS="60")
    server.wait_until_ready()
    big_field = b"X-Filler: " + b"a" * (MAX_HEAD_BYTES + 1) + b"\r\n"
    with stalled_connections(server.port, 1, HALF_A_HEAD + b"\r\n" + big_field) as [client]:
        status, error = _json_error(read_until_closed(client))
    assert (status, error["error"]) == (431, "request_header_fields_too_large")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400),  # HTTP/1.1 needs a Host
    ],
)
def test_the_servers_own_errors_are_the_apps_json(
    draining_server: RunningServer, request_bytes: bytes, status: int
) -> None:
    with stalled_connections(draining_server.port, 1, request_bytes) as [client]:
        answered, error = _json_error(read_until_closed(client))
    assert answered == status
    assert set(error) == {"error", "message"}
    assert error["message"]


@pytest.mark.stress
def test_twenty_thousand_odd_methods_grow_no_metric(start_app: StartServer, tmp_path: Path) -> None:
    server = start_app(TMPDIR=str(tmp_path))
    server.wait_until_ready()
    methods = odd_methods(20_000)
    with ThreadPoolExecutor(max_workers=4) as pool:
        batches = list(pool.map(lambda i: send_methods(server.port, methods[i::4]), range(4)))
    statuses = [status for batch in batches for status in batch]
    assert statuses == [405] * len(methods)

    wait_until("requests settled", lambda: server.metrics()["webapp_http_requests_in_flight"] == 0, 10.0)
    scrape = server.probe("/metrics")
    samples = server.metrics()
    assert samples[f'webapp_http_requests_total{{method="{OTHER_METHOD}",route="<unmatched>",status="405"}}'] == 20_000
    seen = {key.split('method="', 1)[1].split('"', 1)[0] for key in samples if 'method="' in key}
    assert seen <= STANDARD_METHODS | {OTHER_METHOD}, sorted(seen)[:10]
    [metrics_dir] = tmp_path.glob("webapp-metrics-*")
    assert sum(f.stat().st_size for f in metrics_dir.iterdir()) <= 1 << 20, "a few 64 KiB files, not 74 MiB"
    assert len(scrape.body) < 16 * 1024, f"a scrape of {len(scrape.body)} bytes"

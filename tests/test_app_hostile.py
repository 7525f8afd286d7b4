"""Clients that try to hurt the real server: slow and silent connections, odd methods, oversized and broken heads.

A slow client must cost a socket, never a request thread; no client may grow the metrics; every answer the
server gives, gunicorn's own included, is the app's JSON error.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.management import MAX_CONNECTIONS
from app.metrics import OTHER_METHOD, STANDARD_METHODS
from app.server import MAX_CONNECTIONS_PER_WORKER
from app.worker import MAX_HEAD_BYTES
from harness.app_server import RunningServer
from harness.clients import (
    HALF_A_HEAD,
    idle_keep_alive_connections,
    odd_methods,
    read_until_closed,
    send_methods,
    stalled_connections,
)
from harness.http import Outcome
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


@pytest.mark.parametrize(
    "request_bytes",
    [b"GET / HTTP/1.1\nHost: x\n\n", b"GET / HTTP/1.1\r\nHost: x\n\n", b"GET / HTTP/1.1\nHost: x\r\n\r\n"],
    ids=["bare-lf", "bare-lf-blank-line", "bare-lf-request-line"],
)
def test_a_bare_lf_request_is_refused_at_once(start_app: StartServer, request_bytes: bytes) -> None:
    # RFC 9112 lets a server accept bare LF or refuse it; the worker did neither and held the request until its head
    # timeout, never seeing the blank line it waited for.
    server = start_app(HEAD_TIMEOUT_SECONDS="60")
    server.wait_until_ready()
    with stalled_connections(server.port, 1, request_bytes) as [client]:
        status, error = _json_error(read_until_closed(client))
    assert (status, error["error"]) == (400, "bad_request")


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


def test_clients_that_never_close_do_not_hold_up_the_worker(start_app: StartServer) -> None:
    # gunicorn's graceful close waits in recv, up to 2 s, on the worker's only loop, for each client that asked for
    # `Connection: close` (or sent a malformed request) and then kept its side open: 30 such froze one worker a minute.
    server = start_app(WEB_CONCURRENCY="1")
    server.wait_until_ready()
    closing = b"GET / HTTP/1.1\r\nHost: webapp\r\nConnection: close\r\n\r\n"
    malformed = b"GET / HTTP/1.1\r\nHost: webapp\r\nNot a header\r\n\r\n"
    with (
        stalled_connections(server.port, 15, closing) as polite,
        stalled_connections(server.port, 15, malformed) as bad,
    ):
        outcomes = [server.get("/", timeout=3.0) for _ in range(10)]
        answers = [read_until_closed(client) for client in polite + bad]
    assert [o.status for o in outcomes] == [200] * 10, {o.error for o in outcomes}
    assert [answer[:12] for answer in answers] == [b"HTTP/1.1 200"] * 15 + [b"HTTP/1.1 400"] * 15


def test_a_request_body_that_never_arrives_holds_no_thread(start_app: StartServer) -> None:
    # The app answers POST / with 405 without reading the body; gunicorn then drained it in the request thread for
    # up to 5 s: 8 such clients held both threads for 20 s.
    server = start_app(WEB_CONCURRENCY="1", WEB_THREADS="2")
    server.wait_until_ready()
    head = b"POST / HTTP/1.1\r\nHost: webapp\r\nContent-Length: 100000\r\n\r\n"
    with stalled_connections(server.port, 8, head) as clients:
        outcomes = [server.get("/", timeout=3.0) for _ in range(5)]
        answers = [read_until_closed(client) for client in clients]
    assert [o.status for o in outcomes] == [200] * 5, {o.error for o in outcomes}
    assert [answer[:12] for answer in answers] == [b"HTTP/1.1 405"] * 8


def test_latency_counts_the_wait_for_a_thread(start_app: StartServer) -> None:
    # One thread, busy for 1 s: the request queued behind it waited that long, and its latency says so.
    server = start_app(WEB_CONCURRENCY="1", WEB_THREADS="1", ENABLE_TEST_ROUTES="true")
    server.wait_until_ready()
    with ThreadPoolExecutor(max_workers=2) as pool:
        sleeper = pool.submit(server.get, "/debug/sleep?seconds=1")
        wait_until("the sleep in flight", lambda: server.metrics()["webapp_http_requests_in_flight"] == 1, 5.0)
        queued = server.get("/")
    assert (sleeper.result().status, queued.status) == (200, 200)
    series = 'webapp_http_request_duration_seconds_bucket{le="%s",method="GET",route="/",status="200"}'
    wait_until("the sample written", lambda: server.metrics()[series % "+Inf"] == 1, 5.0)
    assert server.metrics()[series % "0.5"] == 0, "the queued request's latency includes its wait"


@pytest.mark.stress
def test_idle_connections_yield_their_slots_to_new_clients(start_app: StartServer) -> None:
    # A worker holds MAX_CONNECTIONS_PER_WORKER connections; idle keep-alive and silent ones filled them and every
    # new client waited in the listen queue until one timed out (75 s keep-alive, renewable by coming back).
    server = start_app(WEB_CONCURRENCY="1", HEAD_TIMEOUT_SECONDS="60")
    server.wait_until_ready()
    with (
        idle_keep_alive_connections(server.port, MAX_CONNECTIONS_PER_WORKER - 20),
        stalled_connections(server.port, 40, b""),
    ):
        outcomes = [server.get("/", timeout=3.0) for _ in range(20)]
        kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=3.0)
        kept.request("GET", "/")
        response = kept.getresponse()
        response.read()
        kept.close()
    assert [o.status for o in outcomes] == [200] * 20, {o.error for o in outcomes}
    assert response.getheader("Connection") != "close", "a new client's connection is kept alive too"


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"5;" + b"x" * 70_000 + b"\r\nhello\r\n0\r\n\r\n"],
    ids=["bad-size", "no-crlf-after-chunk", "oversized-extension"],
)
def test_a_malformed_chunked_body_the_app_did_not_read_gets_one_answer(
    draining_server: RunningServer, body: bytes
) -> None:
    # POST / is answered 405 without reading the body; discarding it then met the bad chunk, and gunicorn wrote a
    # 400 after the 405 on the same connection.
    head = b"POST / HTTP/1.1\r\nHost: webapp\r\nTransfer-Encoding: chunked\r\n\r\n"
    with stalled_connections(draining_server.port, 1, head + body) as [client]:
        answer = read_until_closed(client)
    assert answer.count(b"HTTP/1.1 ") == 1, answer[:400]
    assert answer.startswith(b"HTTP/1.1 405"), answer[:200]


def _flood(port: int, stop: threading.Event, opened: list[int], held: int = MAX_CONNECTIONS) -> None:
    """Open connections to `port` as fast as one thread can, holding the newest `held` open and saying nothing;
    `opened` (one element) counts them as they go."""
    clients: collections.deque[socket.socket] = collections.deque()
    try:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=1))
                opened[0] += 1
            while len(clients) > held:
                clients.popleft().close()
    finally:
        for client in clients:
            client.close()


def _probes_during_a_flood(server: RunningServer, count: int = 50) -> tuple[list[Outcome], int]:
    """`count` readiness probes while two threads flood the management port with silent connections, each holding
    as many as the port does, so the port is full and evicting throughout; and how many connections the flood made."""
    stop = threading.Event()
    counts = [[0], [0]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        floods = [pool.submit(_flood, server.management_port, stop, opened) for opened in counts]
        try:
            wait_until("the flood to fill the port", lambda: sum(c[0] for c in counts) > 2 * MAX_CONNECTIONS, 30.0)
            probes = [server.probe("/ready", timeout=2.0) for _ in range(count)]
        finally:
            stop.set()
        for flood in floods:
            flood.result()
        return probes, sum(c[0] for c in counts)


@pytest.mark.stress
def test_a_connection_flood_on_the_management_port_loses_no_probe(start_app: StartServer) -> None:
    # The port holds MAX_CONNECTIONS and evicts the oldest still being read: a probe whose request had arrived but
    # was not yet read was evicted too (5 of 50 at ~3,000 connections/s), and with failureThreshold 1 a pod flaps.
    # At 64 held, a probe whose client was descheduled between connect and send was evicted (1 of 50 in CI).
    server = start_app()
    server.wait_until_ready()
    probes, opened = _probes_during_a_flood(server)
    assert [p.status for p in probes] == [200] * 50, ({p.error for p in probes}, opened)


_LOW_OPEN_FILES_LIMIT = (
    sys.executable,
    "-c",
    "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200)); "
    "os.execv(sys.argv[1], sys.argv[1:])",
)


@pytest.mark.stress
def test_a_master_out_of_descriptors_still_answers_probes_and_says_why(start_app: StartServer) -> None:
    # With a hard open-files limit of 200 the master cannot hold MAX_CONNECTIONS: accept() failed with EMFILE, the
    # listener stayed readable and the selector thread spun while every probe waited in the kernel's queue.
    server = start_app(prefix=_LOW_OPEN_FILES_LIMIT)
    server.wait_until_ready()
    probes, opened = _probes_during_a_flood(server)
    assert [p.status for p in probes] == [200] * 50, ({p.error for p in probes}, opened)
    warnings = [json.loads(line) for line in server.stderr().splitlines() if "open_files_limit_low" in line]
    assert [w["limit"] for w in warnings] == [200], server.stderr()[-2000:]

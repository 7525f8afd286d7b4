"""examples/hello's server, the second app: its probes, its SIGTERM (in-flight requests finish, exit 0), and hostile
requests that must not stop it answering."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from harness.clients import read_until_closed
from harness.http import get
from harness.processes import free_port, stop, wait_until
from tools.stack_config import REPO_ROOT

SERVER = REPO_ROOT / "examples" / "hello" / "image" / "server.py"
pytestmark = pytest.mark.slow


@contextlib.contextmanager
def _hello() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    with subprocess.Popen(
        [sys.executable, str(SERVER)],
        env={"PORT": str(port), "APP_VERSION": "9.9.9"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as process:
        try:
            wait_until("hello answers /livez", lambda: get(port, "/livez", 1).status == 200, 15)
            yield process, port
        finally:
            stop(process)


def test_it_answers_its_probes_and_its_greeting_on_one_port() -> None:
    with _hello() as (_, port):
        assert get(port, "/readyz", 2).status == 200
        answer = get(port, "/", 2)
        assert answer.status == 200
        assert json.loads(answer.body)["version"] == "9.9.9"
        assert get(port, "/healthz", 2).status == 404  # not the bundled app's paths
        assert get(port, "/?delay=soon", 2).status == 400


def test_sigterm_finishes_the_requests_in_flight_and_exits_zero() -> None:
    with _hello() as (process, port):
        answers: list[int | None] = []
        slow = threading.Thread(target=lambda: answers.append(get(port, "/?delay=1.5", 10).status))
        slow.start()
        time.sleep(0.5)  # the request is in flight (it sleeps 1.5 s before answering)
        process.send_signal(signal.SIGTERM)
        slow.join(10)
        assert process.wait(10) == 0
        out = process.stdout.read().decode() if process.stdout else ""
    assert answers == [200]
    events = [json.loads(line)["event"] for line in out.splitlines()]
    # SIGTERM came while the slow request was in flight; it was answered, then the server stopped.
    assert events[-3:] == ["stopping", "request", "stopped"], out


HOSTILE = [
    pytest.param(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", id="oversized-request-line"),
    pytest.param(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", id="too-many-headers"),
    pytest.param(b"\x00\xff\xfe garbage\r\n\r\n", id="binary"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x", id="truncated"),
    pytest.param(b"GET /?delay=1e309 HTTP/1.0\r\n\r\n", id="infinite-delay"),
    pytest.param(b"GET /?delay=nan HTTP/1.0\r\n\r\n", id="nan-delay"),
]


@pytest.mark.parametrize("request_bytes", HOSTILE)
def test_a_hostile_request_never_stops_it_answering(request_bytes: bytes) -> None:
    with _hello() as (process, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(request_bytes)
            client.shutdown(socket.SHUT_WR)
            read_until_closed(client)
        assert get(port, "/livez", 2).status == 200
        assert process.poll() is None

"""The local cluster's loopback forwarder (localcluster/forward.py), as a real process between a client and a
server on loopback: bytes both ways, half-closes, a target that is down, more clients than it takes, bad flags."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from harness.clients import read_until_closed
from harness.processes import free_port, stop, wait_until
from localcluster.forward import MAX_CONNECTIONS, parse_address
from tools.stack_config import REPO_ROOT


def _echo_server(listener: socket.socket) -> None:
    """Echo every connection's bytes back, uppercased, and close once the client has finished sending."""

    def serve(connection: socket.socket) -> None:
        with connection:
            data = read_until_closed(connection)
            connection.sendall(data.upper())

    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


@pytest.fixture
def target() -> Iterator[int]:
    """An uppercasing echo server on loopback; its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_echo_server, args=(listener,), daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def _forwarder(to_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localcluster.forward", f"--listen=127.0.0.1:{port}", f"--to=127.0.0.1:{to_port}"],
        cwd=REPO_ROOT,
    )

    def answers() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    wait_until("the forwarder listening", answers, 10, alive=lambda: process.poll() is None)
    return process, port


@pytest.fixture
def forwarder(target: int) -> Iterator[int]:
    """A forwarder from a free loopback port to the echo server; its port."""
    process, port = _forwarder(target)
    yield port
    stop(process)


def _exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        return read_until_closed(client)


def test_relays_both_ways_through_a_half_close(forwarder: int) -> None:
    payload = b"hello " * 100_000  # 600 kB: many chunks each way
    assert _exchange(forwarder, payload) == payload.upper()


def test_many_clients_at_once_each_get_their_own_answer(forwarder: int) -> None:
    answers: dict[int, bytes] = {}

    def client(n: int) -> None:
        answers[n] = _exchange(forwarder, f"client {n}".encode())

    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == {n: f"CLIENT {n}".encode() for n in range(50)}


def test_a_target_that_is_down_closes_the_client_and_the_forwarder_keeps_serving(target: int) -> None:
    process, port = _forwarder(free_port())  # nothing listens there
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            assert read_until_closed(client) == b""
        assert process.poll() is None
    finally:
        stop(process)


def test_clients_past_the_bound_are_closed_and_those_within_it_are_served(forwarder: int) -> None:
    with ExitStack() as stack:
        held = []
        for _ in range(MAX_CONNECTIONS):
            held.append(stack.enter_context(socket.create_connection(("127.0.0.1", forwarder), timeout=10)))
            held[-1].sendall(b"x")
        # Every slot is held by a client that has not finished: the next one is closed at once.
        deadline = time.monotonic() + 10
        refused = False
        while time.monotonic() < deadline and not refused:
            with socket.create_connection(("127.0.0.1", forwarder), timeout=10) as extra:
                extra.settimeout(2)
                try:
                    refused = extra.recv(1) == b""
                except TimeoutError:
                    refused = False
        assert refused
        held[0].shutdown(socket.SHUT_WR)
        assert read_until_closed(held[0]) == b"X"
    # Once they are gone, new clients are served again.
    wait_until("a slot free again", lambda: _exchange(forwarder, b"again") == b"AGAIN", 10)


@pytest.mark.parametrize("text", ["", "8080", ":8080", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "h:8x"])
def test_bad_addresses_are_refused_with_what_was_expected(text: str) -> None:
    with pytest.raises(Exception, match="expected HOST:PORT"):
        parse_address(text)


def test_a_port_already_taken_exits_non_zero_naming_it(target: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "localcluster.forward", f"--listen=127.0.0.1:{target}", "--to=127.0.0.1:1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{target}" in result.stderr

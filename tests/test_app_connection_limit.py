"""One worker at its connection limit (`bench.adversary.LIMIT`, lowered for the test): which connection gives way to
a new client, and that its bookkeeping survives events arriving for a connection it has just closed.

To put a new client's arrival and another connection's event in the same batch of the worker's selector, the
worker is paused (SIGSTOP) while both happen and then resumed; epoll lists them in the order they happened.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from bench.adversary import LIMIT, SERVER_COMMAND, SERVER_ENV, Client, request
from harness.app_server import RunningServer
from harness.processes import wait_until
from tests.conftest import StartServer

pytestmark = pytest.mark.slow


@pytest.fixture
def limited(start_app: StartServer) -> RunningServer:
    """One worker holding at most LIMIT connections; heads may take a minute, so silent ones stay."""
    server = start_app(command=SERVER_COMMAND, **{**SERVER_ENV, "HEAD_TIMEOUT_SECONDS": "60", "LOG_LEVEL": "info"})
    server.wait_until_ready()
    return server


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """The worker stopped (SIGSTOP) until the block ends: what happens meanwhile reaches its next select at once."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _held(server: RunningServer) -> tuple[float, float]:
    samples = server.metrics()
    return samples["webapp_worker_connections"], samples["webapp_worker_open_sockets"]


def _wait_for_connections(server: RunningServer, count: int) -> None:
    wait_until(f"the worker holding {count}", lambda: _held(server) == (count, count), 10.0, lambda: str(_held(server)))


def _kept_alive(stack: ExitStack, server: RunningServer) -> Client:
    """A client whose first GET was answered and whose connection is now kept alive, idle."""
    client = Client(server.port)
    stack.callback(client.close)
    client.send(request())
    assert client.answer().status == 200
    return client


def _silent(stack: ExitStack, server: RunningServer) -> Client:
    client = Client(server.port)
    stack.callback(client.close)
    return client


def test_a_kept_alive_connection_evicted_with_a_request_waiting_leaves_the_worker_running(
    limited: RunningServer,
) -> None:
    # Its request made it readable in the same batch as the new client: _make_room closed it, then its stale event
    # reached poller.unregister with fd -1 (ValueError) and the worker exited.
    [pid] = limited.worker_pids()
    with ExitStack() as stack:
        kept = [_kept_alive(stack, limited) for _ in range(LIMIT)]
        _wait_for_connections(limited, LIMIT)
        with paused(pid):
            newcomer = _silent(stack, limited)
            kept[0].send(request())
        newcomer.send(request(close=True))
        assert newcomer.answer().status == 200
        assert kept[0].answer().status == 200, "a request that had arrived is served, not evicted unread"
    assert limited.worker_pids() == [pid]
    assert limited.metrics()["webapp_worker_crashes_total"] == 0


def test_a_head_evicted_with_its_close_waiting_is_counted_once(limited: RunningServer) -> None:
    # The oldest silent connection closed in the same batch as a new client's arrival: _make_room dropped it, then
    # its stale event dropped it again, and the worker's count went one below its sockets for good.
    [pid] = limited.worker_pids()
    with ExitStack() as stack:
        silent = [_silent(stack, limited) for _ in range(LIMIT)]
        _wait_for_connections(limited, LIMIT)
        with paused(pid):
            newcomer = _silent(stack, limited)
            silent[0].close()
        newcomer.send(request(close=True))
        assert newcomer.answer().status == 200
    _wait_for_connections(limited, 0)


def test_silent_connections_never_push_out_kept_alive_clients(limited: RunningServer) -> None:
    # The oldest idle kept-alive connection gave way before any silent one: a flood of silent connections closed
    # a proxy's pooled connections.
    with ExitStack() as stack:
        kept = [_kept_alive(stack, limited) for _ in range(4)]
        for _ in range(LIMIT - 4):
            _silent(stack, limited)
        _wait_for_connections(limited, LIMIT)
        for _ in range(2 * LIMIT):
            _silent(stack, limited)
        last = _silent(stack, limited)
        last.send(request(close=True))
        assert last.answer().status == 200
        for client in kept:
            client.send(request())
        assert [client.answer().outcome for client in kept] == ["answered"] * 4

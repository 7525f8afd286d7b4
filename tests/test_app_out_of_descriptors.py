"""A worker out of file descriptors while it holds idle connections: accept() fails with EMFILE, and the worker must
stop polling its listener for `app.worker.ACCEPT_BACKOFF_SECONDS` instead of retrying the failing accept() on every
turn of its loop.

The server runs under `prlimit --nofile=64`, so a few dozen kept-alive connections take every descriptor the worker
may open; one more client then waits in the listen queue, the listener stays readable, and each accept() fails.
At the connection limit (where the listener stays polled so that a new client takes the idlest connection's slot)
the worker's limit is lowered to the descriptors it holds, so the new client's accept() fails there too.
"""

from __future__ import annotations

import os
import resource
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from app.worker import ACCEPT_BACKOFF_SECONDS
from bench.adversary import LIMIT, SERVER_COMMAND, SERVER_ENV, Client, request
from harness.app_server import RunningServer
from harness.processes import wait_until
from tests.conftest import StartServer

pytestmark = pytest.mark.slow

OPEN_FILES = 64
"""The server's open-files limit: far fewer than its 1,000 connections a worker, so descriptors run out first."""
WATCH_SECONDS = 3.0
MAX_PAUSES_WATCHED = 30
"""A pause lasts ACCEPT_BACKOFF_SECONDS: a handful in WATCH_SECONDS; a worker retrying accept() logs thousands."""


def _pauses(server: RunningServer) -> int:
    return sum(log.count('"accept_paused"') for log in (server.stderr(), server.stdout()))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime and stime, in clock ticks


def _watch_pauses(server: RunningServer, worker: int, held: int) -> None:
    """Count accept_paused lines over WATCH_SECONDS while descriptors stay exhausted; fail if the loop spins."""
    wait_until("accept paused", lambda: _pauses(server) > 0, 10.0)
    before, cpu_before = _pauses(server), _cpu_seconds(worker)
    time.sleep(WATCH_SECONDS)  # the window the pauses are counted in; the bound is on the count, not on time
    pauses, cpu = _pauses(server) - before, _cpu_seconds(worker) - cpu_before
    assert pauses < MAX_PAUSES_WATCHED, (
        f"{pauses} accept_paused lines in {WATCH_SECONDS:g} s (one pause is {ACCEPT_BACKOFF_SECONDS:g} s), "
        f"{cpu:.2f} s of the worker's CPU, {held} connections kept alive"
    )
    assert server.probe("/healthz", timeout=5.0).status == 200


def _fill_descriptors(stack: ExitStack, server: RunningServer) -> tuple[list[Client], Client]:
    """Kept-alive clients until one is left unaccepted: (the kept-alive ones, the one waiting in the listen queue)."""
    kept: list[Client] = []
    for _ in range(OPEN_FILES):
        client = Client(server.port)
        stack.callback(client.close)
        client.send(request())
        answer = client.answer(seconds=3.0)
        if answer.outcome != "answered":
            return kept, client
        assert answer.status == 200
        kept.append(client)
    raise AssertionError(f"{OPEN_FILES} clients kept alive: the worker never ran out of descriptors")


def test_a_worker_out_of_descriptors_with_idle_connections_pauses_accepting(
    start_app: StartServer, tmp_path: Path
) -> None:
    # With a head or a kept-alive connection held, set_accept_enabled(False) returned early (that early return is
    # for the connection limit, where a new client takes the idlest connection's slot): the listener stayed in
    # the selector, and the loop retried the failing accept() and logged accept_paused on every turn.
    server = start_app(
        prefix=["prlimit", f"--nofile={OPEN_FILES}", "--"],
        TMPDIR=str(tmp_path),
        DRAIN_SECONDS="0",
        WEB_CONCURRENCY="1",
        KEEPALIVE_SECONDS="300",
        HEAD_TIMEOUT_SECONDS="300",
    )
    server.wait_until_ready()
    [worker] = server.worker_pids()
    with ExitStack() as stack:
        kept, waiting = _fill_descriptors(stack, server)
        _watch_pauses(server, worker, len(kept))
        # Descriptors freed: the client that waited in the listen queue is accepted and answered.
        for client in kept:
            client.close()
        assert waiting.answer(seconds=10.0).status == 200
    assert server.get("/", timeout=5.0).status == 200
    assert server.worker_pids() == [worker]
    assert server.metrics()["webapp_worker_crashes_total"] == 0


def test_a_worker_out_of_descriptors_at_its_connection_limit_pauses_accepting_and_resumes(
    start_app: StartServer,
) -> None:
    # At the limit set_accept_enabled(False) keeps the listener polled on purpose; a pause for want of descriptors
    # must take it out all the same, and the limit's own path (_resume_accepting_if_idle) must put it back after.
    server = start_app(command=SERVER_COMMAND, **{**SERVER_ENV, "LOG_LEVEL": "info", "HEAD_TIMEOUT_SECONDS": "60"})
    server.wait_until_ready()
    [worker] = server.worker_pids()
    with ExitStack() as stack:
        kept = []
        for _ in range(LIMIT):
            client = Client(server.port)
            stack.callback(client.close)
            client.send(request())
            assert client.answer().status == 200
            kept.append(client)
        wait_until("the worker at its limit", lambda: server.metrics()["webapp_worker_connections"] == LIMIT, 10.0)
        soft, hard = resource.prlimit(worker, resource.RLIMIT_NOFILE)
        # No new descriptor at all (those open stay usable): a limit of the count open would let a new one into any
        # gap in the numbering, or past a short-lived descriptor counted at this instant.
        resource.prlimit(worker, resource.RLIMIT_NOFILE, (0, hard))
        waiting = Client(server.port)
        stack.callback(waiting.close)
        waiting.send(request())
        _watch_pauses(server, worker, len(kept))
        # Descriptors back, the worker still at its limit: accepting resumes after the pause, and the waiting client
        # takes the slot of the longest-idle kept-alive connection.
        resource.prlimit(worker, resource.RLIMIT_NOFILE, (soft, hard))
        assert waiting.answer(seconds=10.0).status == 200
        assert kept[0].answer(seconds=5.0).outcome == "closed", "the longest-idle connection gave way"
    assert server.worker_pids() == [worker]
    assert server.metrics()["webapp_worker_crashes_total"] == 0

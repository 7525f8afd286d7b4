"""A real server receiving SIGTERM or SIGINT under load must not fail a request.

The client opens a fresh connection per request, so "the listener closed" is
observable: the first ConnectionRefusedError. Before it every request must get
an HTTP answer; after it only refusals are acceptable. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness.http import Outcome, get
from harness.processes import wait_until
from tests.conftest import StartServer

MAX_REQUESTS = 400
MAX_LOOP_SECONDS = 15.0
PACE_SECONDS = 0.004
SLOW_REQUEST_SECONDS = 2.5
DRAIN_SECONDS = 1


def _client_loop(port: int, results: list[Outcome], stop_event: threading.Event) -> None:
    deadline = time.monotonic() + MAX_LOOP_SECONDS
    paths = ("/", "/ready")
    while len(results) < MAX_REQUESTS and time.monotonic() < deadline and not stop_event.is_set():
        outcome = get(port, paths[len(results) % 2], timeout=10.0)
        results.append(outcome)
        if sum(1 for r in results if r.error == "ConnectionRefusedError") >= 5:
            return  # the listener is closed for good
        time.sleep(PACE_SECONDS)


@pytest.mark.slow
@pytest.mark.parametrize(
    "signals",
    [
        pytest.param([signal.SIGTERM], id="SIGTERM"),
        pytest.param([signal.SIGINT], id="SIGINT"),
        pytest.param([signal.SIGTERM, signal.SIGTERM, signal.SIGINT], id="repeated-signals-do-not-cut-the-drain"),
    ],
)
def test_shutdown_under_load_drops_no_request(start_app: StartServer, signals: list[signal.Signals]) -> None:
    server = start_app(
        DRAIN_SECONDS=str(DRAIN_SECONDS),
        GRACEFUL_TIMEOUT_SECONDS="10",
        WEB_CONCURRENCY="2",
        WEB_THREADS="4",
        ENABLE_TEST_ROUTES="true",
    )
    port, process = server.port, server.process
    server.wait_until_ready()
    results: list[Outcome] = []
    slow: list[Outcome] = []
    stop_event = threading.Event()
    loop = threading.Thread(target=_client_loop, args=(port, results, stop_event))
    slow_request = threading.Thread(
        target=lambda: slow.append(get(port, f"/debug/sleep?seconds={SLOW_REQUEST_SECONDS}", timeout=20.0))
    )
    loop.start()
    slow_request.start()
    time.sleep(0.3)  # load and the slow request are in flight

    for number, sig in enumerate(signals):
        if number:
            time.sleep(0.2)
        process.send_signal(sig)

    exit_code = process.wait(timeout=30)
    stop_event.set()
    loop.join(timeout=20)
    slow_request.join(timeout=20)

    assert exit_code == 0, server.stderr()
    assert not loop.is_alive()
    assert not slow_request.is_alive()

    refused_at = next((i for i, r in enumerate(results) if r.error == "ConnectionRefusedError"), len(results))
    before_close, after_close = results[:refused_at], results[refused_at:]
    failures = [r for r in before_close if r.error is not None or r.status not in (200, 503)]
    assert not failures, f"requests failed before the listener closed: {failures[:5]}"
    assert all(r.error == "ConnectionRefusedError" for r in after_close), after_close[:5]
    assert all(r.status == 200 for r in before_close if r.path == "/"), "/ must be served during the drain"

    ready_statuses = [r.status for r in before_close if r.path == "/ready"]
    assert 503 in ready_statuses, "/ready never answered 503 before the listener closed"
    first_503 = ready_statuses.index(503)
    assert all(s == 503 for s in ready_statuses[first_503:]), "readiness must not flip back to 200"
    assert sum(1 for r in before_close if r.path == "/" and r.sent_at > _first_503_time(before_close)) > 0, (
        "the server stopped serving / as soon as readiness failed; the drain did not happen"
    )

    assert [(o.status, o.error) for o in slow] == [(200, None)], f"slow request: {slow}"

    events = _lifecycle_events(server.stdout())
    assert events[:1] == ["started"]
    assert events[-3:] == ["draining", "stopping", "stopped"], events


def _first_503_time(results: list[Outcome]) -> float:
    return next(r.sent_at for r in results if r.status == 503)


def _lifecycle_events(stdout: str) -> list[str]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return [line["event"] for line in lines if line.get("event") in {"started", "draining", "stopping", "stopped"}]


@pytest.mark.slow
def test_every_stdout_line_is_json_with_access_fields_and_no_probe_lines(start_app: StartServer) -> None:
    server = start_app(DRAIN_SECONDS="0")
    server.wait_until_ready()
    assert server.get("/no-such-page").status == 404
    assert server.get("/ready").status == server.get("/healthz").status == 200
    assert server.terminate(timeout=20) == 0
    lines = [json.loads(line) for line in server.stdout().splitlines()]
    access = [line for line in lines if line.get("event") == "access"]
    assert [line["path"] for line in access] == ["/no-such-page"], "probes are logged at debug only"
    assert access[0]["method"] == "GET"
    assert access[0]["status"] == 404
    assert isinstance(access[0]["duration_ms"], float)
    assert server.stderr() == ""


@pytest.mark.slow
def test_bad_environment_exits_with_a_message(start_app: StartServer) -> None:
    server = start_app(DRAIN_SECONDS="soon")
    assert server.process.wait(timeout=20) == 2
    assert "DRAIN_SECONDS='soon' is not a whole number" in server.stderr()


def test_no_writable_temporary_directory_stops_the_start_with_one_json_line(start_app: StartServer) -> None:
    no_tmp = "import tempfile; tempfile.tempdir = '/nonexistent/tmp'; from app.server import main; main()"
    server = start_app(command=("-c", no_tmp))
    assert server.process.wait(timeout=20) == 1
    [line] = server.stderr().splitlines()
    logged = json.loads(line)
    assert (logged["level"], logged["event"]) == ("error", "start_failed")
    assert "/nonexistent/tmp" in logged["message"]


@pytest.mark.slow
def test_a_busy_management_port_stops_the_start_with_its_name(start_app: StartServer) -> None:
    first = start_app(DRAIN_SECONDS="0")
    first.wait_until_ready()
    second = start_app(MANAGEMENT_PORT=str(first.management_port))
    assert second.process.wait(timeout=20) == 1
    assert f"MANAGEMENT_PORT={first.management_port}: cannot listen" in second.stderr()


def _listening_socket_inode(port: int) -> str:
    """The inode of the socket listening on `port` (IPv4 or IPv6), from the kernel's socket tables."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if local_port == port and state == "0A":  # 0A: LISTEN
                return inode
    raise AssertionError(f"nothing listens on port {port}")


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of every socket process `pid` has open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # an fd closed while we look
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    return inodes


@pytest.mark.slow
def test_workers_hold_the_traffic_socket_but_not_the_management_one(start_app: StartServer) -> None:
    # Workers outliving a killed master must not keep the management port's backlog open: kubelet would
    # see probes hang instead of being refused. Only the master answers on that port.
    server = start_app(DRAIN_SECONDS="0", WEB_CONCURRENCY="2")
    server.wait_until_ready()
    master = server.process.pid
    workers: list[int] = []

    def both_workers_booted() -> bool:
        workers[:] = server.worker_pids()
        return len(workers) == 2

    wait_until("two workers", both_workers_booted, 10)
    traffic, management = _listening_socket_inode(server.port), _listening_socket_inode(server.management_port)
    assert {traffic, management} <= _socket_inodes(master)
    for worker in workers:
        held = _socket_inodes(worker)
        assert traffic in held, f"worker {worker} does not hold the traffic socket: the check sees no inherited socket"
        assert management not in held, f"worker {worker} still holds the management socket"


def _caught_signals(pid: int) -> set[int]:
    """The signals `pid` has a handler for, from /proc (SigCgt, a hexadecimal mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {sig for sig in range(1, 65) if mask & (1 << (sig - 1))}
    return set()


@pytest.mark.slow
def test_a_sigterm_to_pid_1_while_it_starts_is_drained_not_lost(start_app: StartServer) -> None:
    # In a container the server is PID 1, and the kernel drops a signal to PID 1 that has no handler: a SIGTERM
    # during start-up (before gunicorn's master installs its handlers) was lost and the pod waited out its grace.
    as_pid_1 = ["unshare", "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        as_pid_1[1:1] = ["--user", "--map-root-user"]
    server = start_app(prefix=as_pid_1, DRAIN_SECONDS="1")
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    wait_until("unshare's child, PID 1 of its namespace", lambda: children.read_text().strip() != "", 10.0, interval=0)
    pid_1 = int(children.read_text().split()[0])
    wait_until("a SIGTERM handler", lambda: signal.SIGTERM in _caught_signals(pid_1), 10.0, interval=0)
    assert signal.SIGCHLD not in _caught_signals(pid_1), "caught before gunicorn's master sets its handlers"
    os.kill(pid_1, signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0, server.stderr()[-2000:]
    events = [json.loads(line).get("event") for line in server.stdout().splitlines() if line.startswith("{")]
    assert {"draining", "stopped"} <= set(events), events

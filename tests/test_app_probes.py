"""Probes under load: they answer within the Deployment's probe timeout while every request thread is busy, and
liveness fails when a worker stalls (every thread busy, nothing finishing) and recovers when it progresses again.

Real `python -m app` processes; the only time limit asserted is the probe timeout the Deployment sets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from app.crash_watch import CRASH_LIMIT
from harness.app_server import RunningServer
from harness.http import Outcome
from harness.processes import wait_until
from tests.conftest import StartServer
from webapp_platform.components.pod import PROBE_TIMEOUT_SECONDS

pytestmark = pytest.mark.slow


class Wedge:
    """Requests on the traffic port that hold their thread until released (`/debug/block`)."""

    def __init__(self, server: RunningServer, server_tmp: Path, requests: int) -> None:
        self._release = server_tmp / "release-wedge"
        self._pool = ThreadPoolExecutor(max_workers=requests)
        self.answers = [self._pool.submit(server.get, "/debug/block?release=wedge", 40.0) for _ in range(requests)]

    def release(self) -> list[int | None]:
        """Let every held request finish; their statuses."""
        self._release.touch()
        self._pool.shutdown(wait=True)
        return [answer.result().status for answer in self.answers]


def _server(start_app: StartServer, server_tmp: Path, **env: str) -> RunningServer:
    server = start_app(TMPDIR=str(server_tmp), ENABLE_TEST_ROUTES="true", DRAIN_SECONDS="0", **env)
    server.wait_until_ready()
    return server


def test_probes_answer_within_the_probe_timeout_while_every_thread_is_busy(
    start_app: StartServer, tmp_path: Path
) -> None:
    # One worker, so that which worker accepts which connection cannot leave a thread free.
    server = _server(start_app, tmp_path, WEB_CONCURRENCY="1", WEB_THREADS="4")
    wedge = Wedge(server, tmp_path, requests=6)  # 4 threads held, 2 requests queued behind them
    try:
        # The traffic port is saturated: every thread holds a request, two more wait behind them.
        wait_until("every thread busy", lambda: server.metrics()["webapp_http_requests_in_flight"] == 4.0, 10.0)
        answers: list[Outcome] = []
        for _ in range(10):
            for path in ("/healthz", "/ready"):
                answers.append(server.probe(path, timeout=PROBE_TIMEOUT_SECONDS))
        # Each probe waited the kubelet's timeout at most (a later answer is a TimeoutError, no status).
        assert [(a.path, a.status) for a in answers if a.status != 200] == []
        assert json.loads(answers[0].body)["status"] == "alive"
        assert server.metrics()["webapp_http_requests_in_flight"] == 4.0
    finally:
        assert wedge.release() == [200] * 6


def test_liveness_fails_when_every_thread_is_wedged_and_recovers_once_released(
    start_app: StartServer, tmp_path: Path
) -> None:
    server = _server(start_app, tmp_path, WEB_CONCURRENCY="1", WEB_THREADS="2", STALL_SECONDS="1")
    assert server.probe("/healthz").status == 200
    wedge = Wedge(server, tmp_path, requests=2)
    try:
        wait_until("threads held", lambda: server.metrics()["webapp_http_requests_in_flight"] == 2, 4.0)
        assert server.probe("/healthz").status == 200, "busy is not stalled before STALL_SECONDS"
        wait_until("liveness turns 503", lambda: server.probe("/healthz").status == 503, 4.0)
        stalled = json.loads(server.probe("/healthz").body)
        assert stalled["status"] == "stalled"
        assert stalled["stall_seconds"] == 1
        assert len(stalled["stalled_workers"]) == 1
        assert server.metrics()["webapp_stalled_workers"] == 1.0
        assert server.probe("/ready").status == 200, "a stall is for liveness; readiness keeps its contract"
    finally:
        assert wedge.release() == [200, 200]
    wait_until("liveness recovers", lambda: server.probe("/healthz").status == 200, 5.0)


def test_a_busy_worker_that_keeps_finishing_requests_stays_alive(start_app: StartServer, tmp_path: Path) -> None:
    server = _server(start_app, tmp_path, WEB_CONCURRENCY="1", WEB_THREADS="2", STALL_SECONDS="1")
    # Both threads always busy with 0.4 s requests for 3 s: saturated the whole time, but progressing.
    with ThreadPoolExecutor(max_workers=4) as pool:
        deadline = time.monotonic() + 3.0

        def keep_busy() -> None:
            while time.monotonic() < deadline:
                server.get("/debug/sleep?seconds=0.4")

        for _ in range(4):
            pool.submit(keep_busy)
        verdicts = []
        while time.monotonic() < deadline:
            verdicts.append(server.probe("/healthz").status)
            time.sleep(0.1)
    assert set(verdicts) == {200}


def _status(server: RunningServer, path: str) -> str:
    status: str = json.loads(server.probe(path).body)["status"]
    return status


def test_workers_dying_in_a_loop_fail_readiness_then_liveness(start_app: StartServer, tmp_path: Path) -> None:
    server = _server(start_app, tmp_path, WEB_CONCURRENCY="1", STALL_SECONDS="2")
    crashed: set[int] = set()

    def crash_the_worker() -> bool:
        workers = [pid for pid in server.worker_pids() if pid not in crashed]
        for pid in workers:
            os.kill(pid, signal.SIGSEGV)  # what a crashing extension or a full tmpfs's SIGBUS looks like
            crashed.add(pid)
        return len(crashed) >= CRASH_LIMIT

    assert server.probe("/ready").status == 200
    wait_until(f"{CRASH_LIMIT} workers crashed", crash_the_worker, 20.0)
    wait_until("readiness fails", lambda: _status(server, "/ready") == "crash_looping", 5.0)
    ready = server.probe("/ready")
    assert ready.status == 503
    assert json.loads(ready.body)["status"] == "crash_looping"
    assert json.loads(ready.body)["recent_crashes"] == CRASH_LIMIT
    assert server.metrics()["webapp_worker_crashes_total"] == CRASH_LIMIT
    wait_until("liveness fails after STALL_SECONDS", lambda: server.probe("/healthz").status == 503, 10.0)
    assert json.loads(server.probe("/healthz").body)["status"] == "crash_looping"
    assert server.get("/").status == 200, "the replacement worker still serves; the probes tell Kubernetes to stop"


def test_a_worker_the_master_aborts_counts_as_a_crash(start_app: StartServer, tmp_path: Path) -> None:
    # SIGABRT is what gunicorn's master sends a worker that stopped notifying it (its timeout); the worker's exit
    # path runs (gunicorn's `finally`), but it was not asked to stop: a crash, not a recycle.
    server = _server(start_app, tmp_path, WEB_CONCURRENCY="1")
    [worker] = server.worker_pids()
    os.kill(worker, signal.SIGABRT)
    wait_until("the abort counted", lambda: server.metrics()["webapp_worker_crashes_total"] == 1, 10.0)
    wait_until("a new worker", lambda: server.worker_pids() not in ([], [worker]), 10.0)
    assert server.get("/").status == 200


def test_a_recycled_worker_is_not_a_crash(start_app: StartServer, tmp_path: Path) -> None:
    server = _server(start_app, tmp_path, WEB_CONCURRENCY="1", MAX_REQUESTS="5")
    [first] = server.worker_pids()
    for _ in range(12):
        assert server.get("/").status == 200
    wait_until("the worker recycled", lambda: server.worker_pids() not in ([], [first]), 10.0)
    assert server.metrics()["webapp_worker_crashes_total"] == 0


def test_a_worker_out_of_file_descriptors_stops_accepting_for_a_moment_instead_of_dying(
    start_app: StartServer, tmp_path: Path
) -> None:
    # 64 descriptors a process: far fewer than the worker's 1,000 connections, so accept() fails with EMFILE.
    server = start_app(
        prefix=["prlimit", "--nofile=64", "--"], TMPDIR=str(tmp_path), DRAIN_SECONDS="0", WEB_CONCURRENCY="1"
    )
    server.wait_until_ready()
    [worker] = server.worker_pids()
    with ExitStack() as stack:
        for _ in range(120):
            stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        wait_until("accept paused", lambda: "accept_paused" in server.stderr() + server.stdout(), 10.0)
    # The idle connections are gone: the same worker serves again, and nothing counted a crash.
    wait_until("served again", lambda: server.get("/", timeout=2).status == 200, 15.0)
    assert server.worker_pids() == [worker]
    assert server.metrics()["webapp_worker_crashes_total"] == 0

"""The workers' progress table and the probe verdicts drawn from it, in-process; and the metrics' import order."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.probes import Probes
from app.progress import ProgressTable, slots_for
from app.shutdown_state import ShutdownState
from tools.stack_config import REPO_ROOT

THREADS = 2
STALL = 10.0
SLOTS = slots_for(2)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The table's clock."""
    return Clock()


@pytest.fixture
def table(clock: Clock) -> ProgressTable:
    """A table for workers of two threads, stalled after 10 s; this process plays the worker in slot 0."""
    progress = ProgressTable(SLOTS, THREADS, STALL, clock=clock)
    progress.bind(progress.reserve(), pid=4242)
    return progress


def test_slots_are_handed_out_once_and_freed_when_a_worker_exits() -> None:
    progress = ProgressTable(SLOTS, THREADS, STALL)
    slots = [progress.reserve() for _ in range(SLOTS)]
    assert sorted(slots) == list(range(SLOTS))  # type: ignore[type-var]
    assert progress.reserve() is None, "a full table says so instead of sharing a slot"
    assert progress.workers() == [], "reserved slots are not booted workers"
    progress.release(slots[3])
    assert progress.reserve() == slots[3]


def test_a_worker_counts_as_booted_once_bound(table: ProgressTable) -> None:
    assert [row.pid for row in table.workers()] == [4242]


def test_a_worker_with_every_thread_busy_past_the_limit_is_stalled(table: ProgressTable, clock: Clock) -> None:
    table.request_started()
    clock.now += 100
    [row] = table.workers()
    assert (row.in_flight, row.saturated_since) == (1, 0.0), "a free thread left: not saturated"
    assert table.stalled() == [], "one long request with a thread free is no stall"
    table.request_started()
    clock.now += STALL - 0.5
    assert table.stalled() == []
    clock.now += 1.0
    assert [r.pid for r in table.stalled()] == [4242]


def test_one_finished_request_is_progress(table: ProgressTable, clock: Clock) -> None:
    table.request_started()
    table.request_started()
    clock.now += STALL - 1
    table.request_finished()
    table.request_started()  # saturated again, from now
    clock.now += STALL - 1
    [row] = table.workers()
    assert (row.in_flight, row.completed) == (2, 1)
    assert table.stalled() == [], "the stall clock restarts at each finished request"
    clock.now += 2
    assert len(table.stalled()) == 1


def test_a_process_that_is_not_a_bound_worker_records_nothing() -> None:
    progress = ProgressTable(SLOTS, THREADS, STALL)
    progress.request_started()
    progress.request_finished()
    assert progress.workers() == []


def test_readiness_waits_for_a_booted_worker_then_follows_the_shutdown_flag() -> None:
    progress, shutdown = ProgressTable(SLOTS, THREADS, STALL), ShutdownState()
    probes = Probes("1.2.3", shutdown, progress)
    assert probes.readiness() == (503, b'{"status":"starting","version":"1.2.3"}')
    progress.bind(progress.reserve(), pid=7)
    assert probes.readiness() == (200, b'{"status":"ready","version":"1.2.3"}')
    shutdown.begin()
    assert probes.readiness() == (503, b'{"status":"shutting_down","version":"1.2.3"}')
    assert probes.liveness()[0] == 200, "draining is not dying"


def test_liveness_names_the_stalled_workers(table: ProgressTable, clock: Clock) -> None:
    probes = Probes("1.2.3", ShutdownState(), table)
    table.request_started()
    table.request_started()
    table.stall_seconds = 0.0
    clock.now += 0.1
    status, body = probes.liveness()
    assert status == 503
    assert json.loads(body) == {"status": "stalled", "version": "1.2.3", "stalled_workers": [4242], "stall_seconds": 0}


def test_prometheus_client_is_not_imported_before_the_server_sets_its_directory() -> None:
    # prometheus_client chooses multiprocess mode when first imported; importing it earlier would silently
    # lose every worker's metrics, so importing the app and the server must not import it.
    script = "import sys, app, app.server, app.probes, app.progress; print('prometheus_client' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_the_metrics_directory_is_refused_once_prometheus_client_is_loaded() -> None:
    script = "import prometheus_client\nfrom app import metrics_directory\nmetrics_directory.use_fresh_directory()"
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert run.returncode != 0
    assert "imported before the metrics directory was set" in run.stderr

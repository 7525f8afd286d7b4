"""Prometheus metrics of the real server, scraped on the management port: exact across workers and worker
restarts, labelled by URL rule, with the server's own gauges; never on the traffic port.
"""

from __future__ import annotations

import json
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.app_server import RunningServer
from harness.processes import wait_until
from tests.conftest import StartServer

pytestmark = pytest.mark.slow


def _settled(server: RunningServer, workers: int) -> bool:
    """Every worker up and no request in flight. A request is recorded when its body is closed, just after the
    client has read the answer; it leaves the in-flight count only after that, so then every count is final."""
    samples = server.metrics()
    return samples["webapp_workers"] == workers and samples["webapp_http_requests_in_flight"] == 0


def test_request_counts_are_exact_across_workers_and_worker_restarts(start_app: StartServer) -> None:
    server = start_app(WEB_CONCURRENCY="3", WEB_THREADS="2", MAX_REQUESTS="10", ENABLE_TEST_ROUTES="true")
    server.wait_until_ready()
    paths = ["/"] * 120 + ["/no/such/page/17"] * 30 + ["/debug/sleep?seconds=0"] * 30
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(server.get, paths))
    assert {(o.status, o.error) for o in outcomes} <= {(200, None), (404, None)}, "every request is answered"

    # A worker may be between its restart and its successor's boot; the counts must not care.
    wait_until("3 workers booted, no request in flight", lambda: _settled(server, workers=3), 10.0)
    samples = server.metrics()
    assert samples['webapp_http_requests_total{method="GET",route="/",status="200"}'] == 120
    assert samples['webapp_http_requests_total{method="GET",route="<unmatched>",status="404"}'] == 30
    assert samples['webapp_http_requests_total{method="GET",route="/debug/sleep",status="200"}'] == 30
    assert samples['webapp_http_request_duration_seconds_count{method="GET",route="/",status="200"}'] == 120
    assert samples["webapp_http_requests_in_flight"] == 0
    assert samples["webapp_draining"] == 0
    assert samples[f'webapp_build_info{{version="{json.loads(server.get("/").body)["version"]}"}}'] == 1
    restarts = len(re.findall(r"Autorestarting worker", server.stdout() + server.stderr()))
    assert restarts >= 3, "workers were restarted during the test"
    assert not any(key.startswith("webapp_http_requests_total") and "/healthz" in key for key in samples)


def test_the_draining_gauge_follows_the_shutdown_signal(draining_server: RunningServer) -> None:
    assert draining_server.metrics()["webapp_draining"] == 0
    draining_server.process.send_signal(signal.SIGTERM)
    wait_until("the drain starts", lambda: draining_server.probe("/ready").status == 503, 2.0)
    assert draining_server.metrics()["webapp_draining"] == 1


def test_the_traffic_port_never_serves_metrics(draining_server: RunningServer) -> None:
    assert draining_server.get("/metrics").status == 404
    assert draining_server.probe("/").status == 404


def test_the_metrics_directory_is_fresh_per_start_and_removed_at_exit(start_app: StartServer, tmp_path: Path) -> None:
    stale = tmp_path / "webapp-metrics-earlier"
    stale.mkdir()
    (stale / "counter_4242.db").write_bytes(b"\0" * 16)  # a previous container's files, on the same emptyDir
    server = start_app(TMPDIR=str(tmp_path), DRAIN_SECONDS="0")
    server.wait_until_ready()
    assert server.get("/").status == 200
    wait_until("no request in flight", lambda: _settled(server, workers=2), 10.0)
    [current] = [d for d in tmp_path.glob("webapp-metrics-*") if d != stale]
    assert any(current.glob("*.db")), "the workers write their samples here"
    assert server.metrics()['webapp_http_requests_total{method="GET",route="/",status="200"}'] == 1
    assert server.terminate(timeout=20) == 0
    assert not current.exists()

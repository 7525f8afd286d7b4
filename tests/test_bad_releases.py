"""The e2e's bad release (e2e/releases/failing_release.py, built into an image on top of the app's): the shipped
app with every fifth `GET /` answered 500, or every one slow, counted by the app's own metrics as the alerts and
the canary's analysis read them."""

from __future__ import annotations

import pytest

from harness.processes import wait_until
from tests.conftest import StartServer
from tools.stack_config import REPO_ROOT
from webapp_platform.config.app_metrics import BUNDLED

pytestmark = pytest.mark.slow


def test_every_fifth_request_fails_and_the_apps_metrics_count_it(start_app: StartServer) -> None:
    server = start_app(cwd=REPO_ROOT / "e2e" / "releases", command=("-m", "failing_release"), WEB_CONCURRENCY="1")
    server.wait_until_ready()
    statuses = [server.get("/").status for _ in range(10)]
    assert statuses == [200, 200, 200, 200, 500] * 2
    assert server.get("/healthz").status == 200  # the probes are untouched

    def failed() -> float:
        samples = server.metrics().items()
        return sum(v for k, v in samples if k.startswith(BUNDLED.requests) and 'status="500"' in k)

    wait_until("the two 500s in the app's metrics", lambda: failed() == 2, 10, lambda: str(server.metrics()))


def test_the_slow_fault_answers_every_request_late_and_the_latency_histogram_counts_it(start_app: StartServer) -> None:
    server = start_app(
        cwd=REPO_ROOT / "e2e" / "releases",
        command=("-m", "failing_release"),
        WEB_CONCURRENCY="1",
        RELEASE_FAULT="slow",
    )
    server.wait_until_ready()
    assert [server.get("/").status for _ in range(3)] == [200] * 3

    def under_half_a_second() -> float:
        samples = server.metrics().items()
        return sum(
            v for k, v in samples if k.startswith(BUNDLED.duration_bucket) and 'le="0.5"' in k and 'route="/"' in k
        )

    def counted() -> float:
        return sum(v for k, v in server.metrics().items() if k.startswith(BUNDLED.duration_count) and 'route="/"' in k)

    wait_until("the three requests in the histogram", lambda: counted() == 3, 10, lambda: str(server.metrics()))
    assert under_half_a_second() == 0

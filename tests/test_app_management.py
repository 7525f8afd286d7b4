"""The management port's WSGI app, in-process: probes first, then /metrics, GET or HEAD only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from werkzeug.test import Client

from app.lifecycle import ShutdownState
from app.management import management_app
from app.probes import Probes
from app.progress import ProgressTable, slots_for


def _client() -> tuple[Client, ProgressTable]:
    registry = CollectorRegistry()
    Counter("sample_events", "A sample counter.", registry=registry).inc()
    progress = ProgressTable(slots_for(1), threads=2, stall_seconds=30)
    return Client(management_app(Probes("1.2.3", ShutdownState(), progress), registry)), progress


def test_probes_answer_first_and_readiness_waits_for_a_worker() -> None:
    client, progress = _client()
    assert client.get("/ready").status_code == 503
    progress.bind(progress.reserve(), pid=7)
    assert client.get("/ready").status_code == 200
    assert client.get("/healthz").json == {"status": "alive", "version": "1.2.3"}


def test_metrics_in_the_text_format_and_nothing_else() -> None:
    client, _ = _client()
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["Content-Type"].startswith("text/plain")
    assert "sample_events_total 1.0" in scrape.text
    assert client.get("/").status_code == 404
    for path in ("/metrics", "/healthz", "/nope"):
        refused = client.post(path)
        assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, HEAD")

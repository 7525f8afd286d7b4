"""Benchmark the server against hostile clients: ordinary requests while 1,000 slow and silent connections are
open, and the metrics after 20,000 requests with distinct methods.

    .venv/bin/python bench/hostile_clients.py [--duration 5] [--rounds 3]

Throughput and latency of `GET /` come from wrk (Debian package `wrk`, 16
keep-alive connections) against the app with the production settings (2
workers x 4 threads), alternating rounds without and with the stalled
connections open: 500 that sent half a request head and 500 that sent
nothing. The method flood then sends 20,000 requests with distinct made-up
methods over 4 keep-alive connections and reports the server's resident
memory, the metric files' size and the scrape's size and time. Everything
targets 127.0.0.1. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.app_server import rss_mib, start, stop, wrk
from harness.clients import HALF_A_HEAD, odd_methods, send_methods, stalled_connections

APP = ("-m", "app")


def slow_clients(duration: int, rounds: int, workdir: Path) -> None:
    """wrk on `/` with and without 1,000 stalled connections, interleaved rounds."""
    server = start(APP, workdir / "slow", HEAD_TIMEOUT_SECONDS="300")
    rows: dict[str, list[dict[str, float]]] = {"without": [], "with 1,000 stalled": []}
    try:
        for _ in range(rounds):
            rows["without"].append(wrk(server.port, "/", duration, 16))
            # Half of them sent half a request head, half sent nothing; then all stay silent.
            with stalled_connections(server.port, 500, HALF_A_HEAD), stalled_connections(server.port, 500, b""):
                rows["with 1,000 stalled"].append(wrk(server.port, "/", duration, 16))
    finally:
        stop(server)
    print(f"GET / under wrk (16 connections, {duration}s x {rounds} rounds, medians), HEAD_TIMEOUT_SECONDS=300")
    print(f"{'stalled connections':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for label, runs in rows.items():
        median = {key: statistics.median(run[key] for run in runs) for key in ("rps", "p50", "p99")}
        errors = sum(run["errors"] for run in runs)
        print(f"{label:<22} {median['rps']:>9.0f} {median['p50']:>8.2f} {median['p99']:>8.2f} {errors:>7.0f}")
    print()


def method_flood(workdir: Path, count: int = 20_000) -> None:
    """Memory, metric files and scrape after `count` requests with distinct methods."""
    tmp = workdir / "flood-tmp"
    tmp.mkdir()
    server = start(APP, workdir / "flood", TMPDIR=str(tmp))
    try:
        before = rss_mib(server.process.pid)
        methods = odd_methods(count)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda i: send_methods(server.port, methods[i::4]), range(4)))
        sent = time.monotonic() - started
        after = rss_mib(server.process.pid)
        files = sum(f.stat().st_size for d in tmp.glob("webapp-metrics-*") for f in d.iterdir())
        scrape_started = time.monotonic()
        scrape = server.probe("/metrics")
        scrape_ms = (time.monotonic() - scrape_started) * 1000
    finally:
        stop(server)
    print(f"{count:,} requests with distinct methods over 4 keep-alive connections ({sent:.1f}s)")
    print(f"  resident memory, master + workers: {before:.1f} MiB before, {after:.1f} MiB after")
    print(f"  metric files: {files / 1024:.0f} KiB; scrape: {len(scrape.body):,} bytes in {scrape_ms:.1f} ms")
    print()


def main() -> None:
    """Run both measurements and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    print(f"machine: {os.cpu_count()} cores; wrk and the stalled clients on the same cores as the server\n")
    with tempfile.TemporaryDirectory() as tmp:
        slow_clients(args.duration, args.rounds, Path(tmp))
        method_flood(Path(tmp))


if __name__ == "__main__":
    main()

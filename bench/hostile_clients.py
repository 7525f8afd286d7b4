"""Benchmark the server against hostile clients: ordinary requests and probes under each attack and under all of
them at once, ordinary requests while 1,000 slow and silent connections are open, and the metrics after 20,000
requests with distinct methods.

    .venv/bin/python bench/hostile_clients.py [--attack-seconds 10] [--flood-seconds 60] [--duration 5] [--rounds 3]

The attacks (`bench/attacks.py`: slow heads, silent connections, answers
never read nor closed, bodies never sent, 2,100 idle keep-alive connections,
malformed requests, made-up methods, and oversized lines and a connection
flood on the management port) each run in a process of their own for
--attack-seconds, then all together for --flood-seconds, while two client
threads send ordinary `GET /` on fresh connections (about 50 a second each,
5 s timeout) and one probes `/ready` and `/healthz` on the management port
every 0.25 s with the kubelet's 2 s timeout. Each row prints the ordinary
requests answered 200 and failed, their p50 and p99, and the probes failed,
beside an unloaded row.

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
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.attacks import ATTACKS, Ports, run_attack, settle
from bench.server_figures import rss_mib, start, stop, wrk
from harness.clients import HALF_A_HEAD, odd_methods, send_methods, stalled_connections
from harness.http import Outcome, get

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


@dataclass
class Served:
    """What the ordinary clients and the prober got during one measurement."""

    ordinary: list[Outcome]
    probes: list[Outcome]

    def row(self, label: str) -> str:
        """One table row: ordinary requests answered and failed, their p50 and p99, probes failed."""
        answered = sorted(o.seconds * 1000 for o in self.ordinary if o.status == 200)
        failed = len(self.ordinary) - len(answered)

        def percentile(share: float) -> float:
            return answered[min(len(answered) - 1, int(share * len(answered)))] if answered else float("nan")

        probes_failed = sum(1 for o in self.probes if o.status != 200)
        return (
            f"{label:<32} {len(answered):>7} {failed:>7} {percentile(0.5):>8.1f} {percentile(0.99):>8.1f} "
            f"{probes_failed:>4}/{len(self.probes):<4}"
        )


def _measure(ports: Ports, seconds: float) -> Served:
    """Ordinary requests from two paced threads and probes every 0.25 s, for `seconds`."""
    deadline = time.monotonic() + seconds
    ordinary: list[Outcome] = []
    probes: list[Outcome] = []

    def client() -> None:
        while time.monotonic() < deadline:
            ordinary.append(get(ports.traffic, "/", 5.0))
            time.sleep(0.02)

    def prober() -> None:
        paths = ("/ready", "/healthz")
        while time.monotonic() < deadline:
            probes.append(get(ports.management, paths[len(probes) % 2], 2.0))
            time.sleep(0.25)

    threads = [threading.Thread(target=client), threading.Thread(target=client), threading.Thread(target=prober)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Served(ordinary, probes)


def _under_attack(ports: Ports, names: list[str], seconds: float) -> Served:
    stop = multiprocessing.Event()
    attackers = [multiprocessing.Process(target=run_attack, args=(name, ports, stop)) for name in names]
    for attacker in attackers:
        attacker.start()
    try:
        settle()
        return _measure(ports, seconds)
    finally:
        stop.set()
        for attacker in attackers:
            attacker.join(timeout=15)
            if attacker.is_alive():
                attacker.kill()


def attacks(attack_seconds: float, flood_seconds: float, workdir: Path) -> None:
    """Ordinary requests and probes unloaded, under each attack, and under every attack at once."""
    server = start(APP, workdir / "attacks")
    ports = Ports(server.port, server.management_port)
    try:
        rows = [("none", _measure(ports, attack_seconds))]
        for name in ATTACKS:
            rows.append((name, _under_attack(ports, [name], attack_seconds)))
        rows.append((f"all at once, {flood_seconds:g} s", _under_attack(ports, list(ATTACKS), flood_seconds)))
        crashes = server.metrics().get("webapp_worker_crashes_total", float("nan"))
    finally:
        stop(server)
    print(
        f"Ordinary GET / (2 clients, ~50/s each, fresh connections) and probes (every 0.25 s, 2 s timeout), "
        f"{attack_seconds:g} s per attack; 2 workers x 4 threads"
    )
    print(f"{'attack':<32} {'200':>7} {'failed':>7} {'p50 ms':>8} {'p99 ms':>8} {'probes failed':>13}")
    for label, served in rows:
        print(served.row(label))
    print(f"worker crashes counted: {crashes:g}")
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
    parser.add_argument("--attack-seconds", type=float, default=10, help="seconds of measurement per attack")
    parser.add_argument("--flood-seconds", type=float, default=60, help="seconds of every attack at once")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    print(f"machine: {os.cpu_count()} cores; wrk and the stalled clients on the same cores as the server\n")
    with tempfile.TemporaryDirectory() as tmp:
        attacks(args.attack_seconds, args.flood_seconds, Path(tmp))
        slow_clients(args.duration, args.rounds, Path(tmp))
        method_flood(Path(tmp))


if __name__ == "__main__":
    main()

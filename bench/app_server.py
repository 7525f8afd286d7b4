"""Benchmark the app server: throughput and latency, start-up time, memory, and failures during SIGTERM.

    .venv/bin/python bench/app_server.py [--duration 5] [--connections 16]

Load generator: wrk (Debian package `wrk`), a C client, for throughput and
latency; the same wrk run hits the app's /ready and /healthz and a bare WSGI
callable under the same gunicorn settings, so the ratio is the cost of Flask
and the app. The SIGTERM measurement uses a threaded Python client opening a
fresh connection per request (it counts outcomes, not speed). Everything
targets 127.0.0.1 and every loop is bounded. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.server_process import REPO_ROOT, Outcome, free_port, get, wait_until_ready

SERVER_ENV = {"WEB_CONCURRENCY": "2", "WEB_THREADS": "4", "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
MEMORY_REQUEST_MIB = 128


def start(command: list[str], port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start a server process on `port`, output into `log`."""
    environment = {**os.environ, **SERVER_ENV, "PORT": str(port), **env}
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM with no drain wait beyond what the server was started with; SIGKILL after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wrk(port: int, path: str, duration: int, connections: int) -> dict[str, float]:
    """Run wrk against one path; return req/s, p50 and p99 in ms, and error count."""
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    )
    out = result.stdout

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", out, re.MULTILINE)
        if not match:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return float(match.group(1)) * scale

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    error_count = sum(int(n) for n in errors.groups()) if errors else 0
    error_count += int(non2xx.group(1)) if non2xx else 0
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": error_count,
    }


def rss_mib(root_pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total_kib, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total_kib += int(match.group(1)) if match else 0
    return total_kib / 1024


class MemorySampler:
    """Samples a process tree's resident memory twice a second while the `with` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.samples.append(rss_mib(self.pid))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def throughput(duration: int, connections: int, rounds: int, workdir: Path) -> None:
    """Table 1: the app's probes against the bare WSGI callable, same server settings, same client.

    All three servers run side by side (idle ones cost nothing); each round
    loads every target in turn, and the table shows per-target medians, so
    noise from this shared 2-core machine hits every target alike.
    """
    targets = [
        ("app /ready", [sys.executable, "-m", "app"], "/ready"),
        ("app /healthz", [sys.executable, "-m", "app"], "/healthz"),
        ("bare WSGI callable", [sys.executable, "bench/baseline_wsgi.py"], "/ready"),
    ]
    servers: list[tuple[str, subprocess.Popen[bytes], int, str]] = []
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in targets}
    memory: dict[str, float] = {}
    try:
        for number, (label, command, path) in enumerate(targets):
            port = free_port()
            process = start(command, port, workdir / f"server{number}.log", DRAIN_SECONDS="0")
            servers.append((label, process, port, path))
            wait_until_ready(process, port)
        app_pid = servers[0][1].pid
        time.sleep(1.0)
        memory["idle"] = rss_mib(app_pid)
        for _, _, port, path in servers:
            wrk(port, path, 2, connections)  # warm-up, discarded: first requests pay lazy imports and cache fills
        for _ in range(rounds):
            for label, process, port, path in servers:
                sampler = MemorySampler(process.pid)
                with sampler:
                    results[label].append(wrk(port, path, duration, connections))
                if process.pid == app_pid and sampler.samples:
                    memory["load"] = max(memory.get("load", 0.0), *sampler.samples)
    finally:
        for _, process, _, _ in servers:
            stop(process)

    medians = {
        label: {key: statistics.median(run[key] for run in runs) for key in ("rps", "p50", "p99")}
        | {"errors": sum(run["errors"] for run in runs)}
        for label, runs in results.items()
    }
    baseline = medians["bare WSGI callable"]["rps"]
    print(
        f"Throughput and latency: wrk -t2 -c{connections} -d{duration}s, median of {rounds} interleaved rounds, "
        "gunicorn 2 workers x 4 threads, loopback"
    )
    print(f"{'target':<20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs bare':>8}")
    for label, figures in medians.items():
        ratio = figures["rps"] / baseline if baseline else float("nan")
        print(
            f"{label:<20} {figures['rps']:>9.0f} {figures['p50']:>8.2f} {figures['p99']:>8.2f} "
            f"{int(figures['errors']):>7} {ratio:>7.2f}x"
        )
    print()
    print("Resident memory of the app, master + 2 workers (VmRSS summed)")
    print(f"{'state':<20} {'MiB':>7} {'of 128Mi request':>17}")
    for state in ("idle", "load"):
        if state in memory:
            print(f"{state:<20} {memory[state]:>7.1f} {memory[state] / MEMORY_REQUEST_MIB:>16.0%}")
    print()


def startup(runs: int, workdir: Path) -> None:
    """Table 2: seconds from process start to the first 200 on /ready."""
    times = []
    for run in range(runs):
        port = free_port()
        started = time.monotonic()
        process = start([sys.executable, "-m", "app"], port, workdir / f"startup{run}.log", DRAIN_SECONDS="0")
        try:
            wait_until_ready(process, port)
            times.append(time.monotonic() - started)
        finally:
            stop(process)
    print(f"Start to first 200 on /ready over {runs} runs (the probe polls every 10 ms)")
    print(f"  median {statistics.median(times):.3f}s   min {min(times):.3f}s   max {max(times):.3f}s")
    print()


def sigterm_under_load(workdir: Path, clients: int = 8, drain: int = 3) -> None:
    """Table 3: failed requests while SIGTERM is handled under sustained load (target 0)."""
    port = free_port()
    process = start(
        [sys.executable, "-m", "app"],
        port,
        workdir / "sigterm.log",
        DRAIN_SECONDS=str(drain),
        GRACEFUL_TIMEOUT_SECONDS="10",
        ENABLE_TEST_ROUTES="true",
    )
    wait_until_ready(process, port)
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + drain + 15

    def client(number: int) -> None:
        refused = 0
        paths = ("/", "/ready", "/debug/sleep?seconds=0.2")
        count = 0
        while time.monotonic() < deadline and refused < 3 and count < 5000:
            outcome = get(port, paths[(number + count) % 3])
            count += 1
            with lock:
                outcomes.append(outcome)
            refused += outcome.error == "ConnectionRefusedError"

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    exit_code = process.wait(timeout=drain + 30)
    for thread in threads:
        thread.join(timeout=30)

    before = [o for o in outcomes if o.sent_at < signalled]
    during = [o for o in outcomes if o.sent_at >= signalled]
    served = [o for o in during if o.status is not None]
    refused = [o for o in during if o.error == "ConnectionRefusedError"]
    failed = [o for o in outcomes if o.error not in (None, "ConnectionRefusedError")]
    failed += [o for o in outcomes if o.status not in (None, 200, 503)]
    print(f"SIGTERM under load: {clients} client threads, fresh connection per request, DRAIN_SECONDS={drain}")
    print(f"  requests before SIGTERM     {len(before)}")
    print(f"  served after SIGTERM        {len(served)} ({sum(o.status == 503 for o in served)} were /ready 503)")
    print(f"  refused after listener shut {len(refused)}")
    print(f"  failed (reset, timeout, 5xx other than /ready) {len(failed)}   <- target 0")
    print(f"  server exit code            {exit_code}")
    print()


def main() -> None:
    """Run the three measurements and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds per target")
    parser.add_argument("--startup-runs", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    print(f"machine: {os.cpu_count()} cores; load generator: wrk (C, epoll) on the same cores as the server\n")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        throughput(args.duration, args.connections, args.rounds, workdir)
        startup(args.startup_runs, workdir)
        sigterm_under_load(workdir)


if __name__ == "__main__":
    main()

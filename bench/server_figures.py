"""Benchmark the app server: throughput, probe latency under saturation, a profile of `/`, start-up, memory,
and failures during SIGTERM.

    .venv/bin/python bench/server_figures.py [--duration 5] [--connections 16] [--rounds 3]

Load generator: wrk (Debian package `wrk`), a C client with keep-alive
connections, for throughput and latency. The same wrk runs hit the app's `/`,
`/ready` and `/healthz` (traffic port, LOG_LEVEL=info with the access log on,
as in production), a minimal Flask app returning the same JSON with no
logging, and a bare WSGI callable, all under the same gunicorn settings
(bench/baseline_wsgi.py), so the ratios are the cost of Flask and of the app.
Probe latency is measured by a Python client probing every 20 ms while the
workers are saturated two ways: every thread held by slow requests, and every
core busy with wrk on `/`; "before" is the probe through the request thread
pool (the traffic port, where the probes used to be), "after" the management
port the Deployment's probes now call. The profile runs `/` in-process under
pyinstrument. Everything targets 127.0.0.1 and every loop is bounded. Prints
tables; asserts nothing.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.app_server import RunningServer, start_server
from harness.http import Outcome, get

SERVER_ENV = {"WEB_CONCURRENCY": "2", "WEB_THREADS": "4", "LOG_LEVEL": "info", "DRAIN_SECONDS": "0"}
MEMORY_REQUEST_MIB = 128
APP = ("-m", "app")
BARE = ("bench/baseline_wsgi.py", "bare")
MINIMAL_FLASK = ("bench/baseline_wsgi.py", "flask")


def start(command: tuple[str, ...], log_dir: Path, **env: str) -> RunningServer:
    """Start a server (the app or a baseline) on free ports with the bench's settings; wait until it is ready."""
    log_dir.mkdir(parents=True, exist_ok=True)
    server = start_server(log_dir, {**SERVER_ENV, **env}, command=command)
    server.wait_until_ready()
    return server


def stop(server: RunningServer) -> None:
    """SIGTERM (the servers run with no drain); SIGKILL after 30 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.stop()


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
    """Table 1: the app's routes against a minimal Flask app and a bare WSGI callable, same server, same client.

    All servers run side by side (idle ones cost nothing); each round loads
    every target in turn, and the table shows per-target medians, so noise
    from this shared 2-core machine hits every target alike.
    """
    app = start(APP, workdir / "throughput-app")
    flask_floor = start(MINIMAL_FLASK, workdir / "throughput-flask")
    bare = start(BARE, workdir / "throughput-bare")
    targets = [
        ("app /", app, app.port, "/"),
        ("app /ready", app, app.port, "/ready"),
        ("app /healthz", app, app.port, "/healthz"),
        ("minimal Flask /", flask_floor, flask_floor.port, "/"),
        ("bare WSGI callable", bare, bare.port, "/"),
        ("management /ready", app, app.management_port, "/ready"),
    ]
    results: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in targets}
    memory: dict[str, float] = {}
    try:
        time.sleep(1.0)
        memory["idle"] = rss_mib(app.process.pid)
        for _, _, port, path in targets:
            wrk(port, path, 2, connections)  # warm-up, discarded: first requests pay lazy imports and cache fills
        for _ in range(rounds):
            for label, server, port, path in targets:
                sampler = MemorySampler(server.process.pid)
                with sampler:
                    results[label].append(wrk(port, path, duration, connections))
                if server is app and sampler.samples:
                    memory["load"] = max(memory.get("load", 0.0), *sampler.samples)
    finally:
        for server in (app, flask_floor, bare):
            stop(server)

    medians = {
        label: {key: statistics.median(run[key] for run in runs) for key in ("rps", "p50", "p99")}
        | {"errors": sum(run["errors"] for run in runs)}
        for label, runs in results.items()
    }
    baseline = medians["bare WSGI callable"]["rps"]
    print(
        f"Throughput and latency: wrk -t2 -c{connections} -d{duration}s (keep-alive), median of {rounds} "
        "interleaved rounds, gunicorn gthread 2 workers x 4 threads, loopback; the app with LOG_LEVEL=info"
    )
    print(f"{'target':<20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs bare':>8}")
    for label, figures in medians.items():
        ratio = figures["rps"] / baseline if baseline else float("nan")
        print(
            f"{label:<20} {figures['rps']:>9.0f} {figures['p50']:>8.2f} {figures['p99']:>8.2f} "
            f"{int(figures['errors']):>7} {ratio:>7.2f}x"
        )
    print("(management /ready: the master's own HTTP/1.0 listener, one connection per request; for scale only)")
    print()
    print("Resident memory of the app, master + 2 workers (VmRSS summed)")
    print(f"{'state':<20} {'MiB':>7} {'of 128Mi request':>17}")
    for state in ("idle", "load"):
        if state in memory:
            print(f"{state:<20} {memory[state]:>7.1f} {memory[state] / MEMORY_REQUEST_MIB:>16.0%}")
    print()


def _probe_latencies(port: int, path: str, seconds: float, timeout: float = 5.0) -> list[Outcome]:
    """Probe every 20 ms for `seconds`, each on a fresh connection as kubelet does."""
    outcomes = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outcomes.append(get(port, path, timeout=timeout))
        time.sleep(0.02)
    return outcomes


def _latency_row(label: str, outcomes: list[Outcome]) -> str:
    answered = sorted(o.seconds * 1000 for o in outcomes if o.status is not None)
    failed = len(outcomes) - len(answered)

    def percentile(share: float) -> float:
        return answered[min(len(answered) - 1, int(share * len(answered)))] if answered else float("nan")

    return f"{label:<44} {len(outcomes):>6} {percentile(0.5):>8.1f} {percentile(0.99):>9.1f} {failed:>9}"


def probe_latency(seconds: float, workdir: Path) -> None:
    """Table 2: probe latency while the workers are saturated, through the thread pool (before) and the
    management port (after)."""
    print(f"Probe latency under saturation: a probe every 20 ms for {seconds:g}s, fresh connection, 5 s timeout")
    print(f"{'probe':<44} {'probes':>6} {'p50 ms':>8} {'p99 ms':>9} {'timed out':>9}")
    server = start(APP, workdir / "probes", ENABLE_TEST_ROUTES="true")
    try:
        # Every thread held: 2 workers x 4 threads, 16 slow requests keep them all busy and 8 queued.
        slow = [
            threading.Thread(target=get, args=(server.port, "/debug/sleep?seconds=8", 30.0), daemon=True)
            for _ in range(16)
        ]
        for thread in slow:
            thread.start()
        time.sleep(0.5)
        for label, port in (
            ("before: /healthz via the thread pool", server.port),
            ("after: management /healthz", server.management_port),
        ):
            print(_latency_row(f"{label}, threads held", _probe_latencies(port, "/healthz", min(seconds, 3.0))))
        for thread in slow:
            thread.join(timeout=30)
        # Every core busy: wrk on / with 64 connections, in the background.
        load = subprocess.Popen(
            ["wrk", "-t2", "-c64", f"-d{int(2 * seconds + 4)}s", f"http://127.0.0.1:{server.port}/"],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            for label, port in (
                ("before: /healthz via the thread pool", server.port),
                ("after: management /healthz", server.management_port),
            ):
                print(_latency_row(f"{label}, CPU saturated", _probe_latencies(port, "/healthz", seconds)))
        finally:
            load.terminate()
            load.wait(timeout=10)
    finally:
        stop(server)
    print()


def profile_index(requests: int) -> None:
    """Table 3: where `/` spends its time, in-process under pyinstrument: the app's WSGI stack and its access log."""
    from app import metrics_directory

    metrics_dir = metrics_directory.use_fresh_directory()
    try:
        _profile_index(requests)
    finally:
        metrics_directory.remove_directory(metrics_dir)


def _profile_index(requests: int) -> None:
    import logging
    from datetime import timedelta
    from types import SimpleNamespace

    from pyinstrument import Profiler
    from werkzeug.test import EnvironBuilder

    from app.factory import create_app
    from app.jsonlog import GunicornJsonLogger
    from app.metrics import RequestMetrics
    from app.progress import ProgressTable, slots_for
    from app.settings import AppSettings
    from app.shutdown_state import ShutdownState

    settings = AppSettings.from_env({})
    progress = ProgressTable(slots_for(settings.workers), settings.threads, settings.stall_seconds)
    progress.bind(progress.reserve(), os.getpid())
    wsgi = create_app(settings=settings, shutdown=ShutdownState(), progress=progress, metrics=RequestMetrics())
    logger = GunicornJsonLogger(_logger_config())
    with open(os.devnull, "w") as devnull:
        for handler in logger.access_log.handlers:
            handler.setStream(devnull)
        response = SimpleNamespace(status="200 OK")

        def one_request() -> None:
            environ = EnvironBuilder(path="/").get_environ()
            body = wsgi(environ, _discard_start_response)
            b"".join(body)
            body.close()  # type: ignore[attr-defined]
            logger.access(response, None, environ, timedelta(microseconds=500))

        for _ in range(200):
            one_request()
        profiler = Profiler(interval=0.0001)
        started = time.perf_counter()
        with profiler:
            for _ in range(requests):
                one_request()
        elapsed = time.perf_counter() - started
    logging.getLogger().handlers.clear()
    print(f"Profile of / in-process ({requests} requests, {elapsed / requests * 1e6:.0f} us each under the profiler)")
    print(profiler.output_text(unicode=False, color=False, show_all=False, short_mode=True))


def _discard_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def _logger_config() -> Any:
    from gunicorn.config import Config

    config = Config()
    config.set("accesslog", "-")
    config.set("errorlog", "-")
    config.set("loglevel", "info")
    return config


def startup(runs: int, workdir: Path) -> None:
    """Table 4: seconds from process start to the first 200 on the management port's /ready."""
    times = []
    for run in range(runs):
        started = time.monotonic()
        server = start(APP, workdir / f"startup{run}")
        times.append(time.monotonic() - started)
        stop(server)
    print(f"Start to first 200 on /ready over {runs} runs (polled every 10 ms)")
    print(f"  median {statistics.median(times):.3f}s   min {min(times):.3f}s   max {max(times):.3f}s")
    print()


def sigterm_under_load(workdir: Path, clients: int = 8, drain: int = 3) -> None:
    """Table 5: failed requests while SIGTERM is handled under sustained load (target 0)."""
    server = start(
        APP, workdir / "sigterm", DRAIN_SECONDS=str(drain), GRACEFUL_TIMEOUT_SECONDS="10", ENABLE_TEST_ROUTES="true"
    )
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + drain + 15

    def client(number: int) -> None:
        refused = 0
        paths = ("/", "/ready", "/debug/sleep?seconds=0.2")
        count = 0
        while time.monotonic() < deadline and refused < 3 and count < 5000:
            outcome = server.get(paths[(number + count) % 3])
            count += 1
            with lock:
                outcomes.append(outcome)
            refused += outcome.error == "ConnectionRefusedError"

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    signalled = time.monotonic()
    exit_code = server.terminate(timeout=drain + 30)
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
    """Run the measurements and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds per target")
    parser.add_argument("--probe-seconds", type=float, default=4.0, help="seconds of probing per saturation case")
    parser.add_argument("--profile-requests", type=int, default=5000)
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--only", choices=["throughput", "probes", "profile", "startup", "sigterm"], action="append")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    chosen = set(args.only or ["throughput", "probes", "profile", "startup", "sigterm"])
    print(f"machine: {os.cpu_count()} cores; load generator: wrk (C, epoll) on the same cores as the server\n")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if "throughput" in chosen:
            throughput(args.duration, args.connections, args.rounds, workdir)
        if "probes" in chosen:
            probe_latency(args.probe_seconds, workdir)
        if "profile" in chosen:
            profile_index(args.profile_requests)
        if "startup" in chosen:
            startup(args.startup_runs, workdir)
        if "sigterm" in chosen:
            sigterm_under_load(workdir)


if __name__ == "__main__":
    main()

"""A seeded, randomized adversary for the server: random mixes of hostile and honest clients against one worker at
its connection limit and against the management port, with the server's invariants checked while they run.

Shared by the test (`tests/test_app_adversary.py`, a short run in `make stress`) and the benchmark
(`bench/server_adversary.py`, as long as asked). One seed decides everything that is not timing: each round's mix
(every behaviour's weight) and, per client thread, the sequence of behaviours and their parameters. The seed is
printed first and in every failure, so `ADVERSARY_SEED=<seed>` replays the same clients.

The behaviours (`BEHAVIOURS`): churn at the connection limit (silent connections opened in a loop, held and closed
or reset), keep-alive bursts, pipelining, half-close, reset (SO_LINGER 0) mid-request, partial and oversized heads,
bodies never or slowly sent, random bytes, bare-LF requests, `bench/attacks.py`'s malformed requests and made-up
methods, answers left unread, and on the management port silent floods and junk (its attacks, oversized heads, bare
LF). The server runs one worker at a small connection limit (`LIMIT`), so the limit is reached cheaply.

The invariants, checked continuously by a watchdog thread and at each round's end:

- no worker exits unasked: the worker's pid is unchanged, the crash counter stays 0;
- every probe (`/healthz` on the management port, every 0.2 s) is answered 200 within the kubelet's timeout;
- the worker's connection count stays within 0..LIMIT, and once every client has closed, the worker counts no
  connection and the kernel lists no socket of its left open (`webapp_worker_connections`,
  `webapp_worker_open_sockets`, `webapp_worker_closing_connections`);
- every whole request gets its answer (the status each behaviour expects) and never waits past a bound; one the
  server closed without answering must be on a connection the server says it evicted (the worker logs each
  eviction at debug level), and a connection that had sent a request or been kept alive is evicted only when no
  connection that sent nothing (then: no head still arriving) was held;
- at the end, requests in flight when the server is told to stop are answered.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bench.attacks import LOOPBACK, MALFORMED_REQUESTS, MANAGEMENT_JUNK
from harness.app_server import RunningServer
from harness.clients import HALF_A_HEAD, odd_methods
from harness.http import get
from webapp_platform.components.pod import PROBE_TIMEOUT_SECONDS

LIMIT = 24
"""The worker's connection limit under the adversary (production holds 1,000)."""
HEAD_TIMEOUT_SECONDS = 2
ANSWER_SECONDS = 6.0
"""How long a whole request may wait for its answer before it counts as left unanswered."""
ROUND_SECONDS = 4.0
TRAFFIC_CLIENTS = 6
MANAGEMENT_CLIENTS = 1
MAX_HEAD_BYTES = 64 * 1024  # app.worker.MAX_HEAD_BYTES
MANAGEMENT_MAX_HEAD_BYTES = 8 * 1024  # app.management.MAX_HEAD_BYTES

SERVER_COMMAND = (
    "-c",
    "import sys, app.server as server; server.MAX_CONNECTIONS_PER_WORKER = int(sys.argv[1]); server.main()",
    str(LIMIT),
)
"""`python -m app` with the worker's connection limit lowered to LIMIT (not a setting: a test's knob)."""
SERVER_ENV = {
    "WEB_CONCURRENCY": "1",
    "WEB_THREADS": "4",
    "HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT_SECONDS),
    "LOG_LEVEL": "debug",  # the worker's eviction lines
    "ENABLE_TEST_ROUTES": "true",  # /debug/sleep, for the requests in flight at the stop
    "DRAIN_SECONDS": "0",
    "GRACEFUL_TIMEOUT_SECONDS": "10",
}
"""The server's environment: one worker, heads due in 2 s, debug logs."""


def seed_from_env() -> int:
    """ADVERSARY_SEED if set, else a fresh random seed."""
    raw = os.environ.get("ADVERSARY_SEED", "").strip()
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


@dataclass(frozen=True)
class Target:
    """The server under attack: its two ports."""

    traffic: int
    management: int


@dataclass
class Ledger:
    """What the clients and the watchdog saw, shared by their threads: counts, lost requests and violations."""

    seed: int
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    lost: list[tuple[str, int]] = field(default_factory=list)
    """(behaviour, client port) of whole requests the server closed without answering."""
    violations: list[str] = field(default_factory=list)
    probe_seconds: list[float] = field(default_factory=list)
    evictions_checked: int = 0
    """How many of the worker's eviction lines the order was checked on."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        """Count one event (an episode, an answer, a loss)."""
        with self.lock:
            self.counts[key] += 1

    def violation(self, text: str) -> None:
        """Record a broken invariant (the first few of each kind are kept whole)."""
        with self.lock:
            self.violations.append(text)

    def lose(self, behaviour: str, port: int) -> None:
        """Record a whole request closed unanswered, to be matched with the server's evictions."""
        with self.lock:
            self.lost.append((behaviour, port))
            self.counts[f"{behaviour}: closed unanswered"] += 1


# The wire.
@dataclass(frozen=True)
class Answer:
    """One response read from a connection, or what happened instead: `closed` (EOF or reset) or `hung`."""

    status: int | None
    outcome: str
    close: bool = False


def request(method: str = "GET", *, headers: str = "", close: bool = False, body: bytes = b"") -> bytes:
    """A whole HTTP/1.1 request for `/`."""
    connection = "Connection: close\r\n" if close else ""
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} / HTTP/1.1\r\nHost: webapp\r\n{connection}{length}{headers}\r\n".encode() + body


class Client:
    """One client connection: its socket, its local port (the server's view of it) and the bytes not yet parsed."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=ANSWER_SECONDS)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port: int = self.sock.getsockname()[1]
        self._buffer = b""

    def send(self, data: bytes) -> bool:
        """Send `data`; False if the server has closed the connection."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def answer(self, seconds: float = ANSWER_SECONDS) -> Answer:
        """The next response (status line, headers, Content-Length body), or `closed`/`hung`."""
        deadline = time.monotonic() + seconds
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Answer(None, "hung")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return Answer(None, "hung")
            except OSError:
                return Answer(None, "closed")
            if not data:
                return Answer(None, "closed")
            self._buffer += data

    def _parse(self) -> Answer | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
        length = int(headers.get("content-length", "0").strip() or 0)
        if len(self._buffer) < end + 4 + length:
            return None
        self._buffer = self._buffer[end + 4 + length :]
        close = headers.get("connection", "").strip() == "close"
        return Answer(int(lines[0].split(" ", 2)[1]), "answered", close)

    def reset(self) -> None:
        """Close with a reset (SO_LINGER 0) instead of a FIN."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        """Close normally."""
        self.sock.close()


@contextlib.contextmanager
def connected(port: int) -> Iterator[Client]:
    """A client connection, closed at the end (or reset, if the body raised)."""
    client = Client(port)
    try:
        yield client
    finally:
        client.close()


def expect(ledger: Ledger, behaviour: str, client: Client, allowed: set[int], seconds: float = ANSWER_SECONDS) -> bool:
    """Read the answer to a whole request and check it: one of `allowed`, or closed unanswered (matched later with
    the server's evictions); never none at all. True when answered and the connection stays open."""
    got = client.answer(seconds)
    if got.outcome == "hung":
        ledger.violation(f"{behaviour}: a whole request got no answer in {seconds:g} s (client port {client.port})")
        return False
    if got.outcome == "closed":
        ledger.lose(behaviour, client.port)
        return False
    ledger.count(f"{behaviour}: {got.status}")
    if got.status not in allowed:
        ledger.violation(f"{behaviour}: answered {got.status}, expected one of {sorted(allowed)}")
    return not got.close


# The behaviours: each one episode, from connect to close, whose choices come from `rng`.
Behaviour = Callable[[random.Random, Target, Ledger], None]


def keep_alive_burst(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """GETs back to back on one kept-alive connection, idling 0-20 ms between them."""
    with connected(target.traffic) as client:
        for _ in range(rng.randint(2, 12)):
            if not client.send(request()):
                ledger.lose("keep-alive burst", client.port)
                return
            if not expect(ledger, "keep-alive burst", client, {200}):
                return
            time.sleep(rng.uniform(0, 0.02))


def keep_alive_pool(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """A proxy's pool: up to LIMIT kept-alive connections, reused a few at a time after idling up to 0.3 s."""
    pool = []
    try:
        for _ in range(rng.randint(LIMIT // 2, LIMIT)):
            client = Client(target.traffic)
            pool.append(client)
            if not client.send(request()) or not expect(ledger, "keep-alive pool", client, {200}):
                pool.pop().close()
        for _ in range(rng.randint(1, 4)):
            time.sleep(rng.uniform(0, 0.3))
            for client in rng.sample(pool, rng.randint(0, len(pool))):
                if not client.send(request()) or not expect(ledger, "keep-alive pool", client, {200}):
                    pool.remove(client)
                    client.close()
    finally:
        for client in pool:
            client.close()


def pipelined(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """Several GETs in one write; each answered in order."""
    count = rng.randint(2, 6)
    with connected(target.traffic) as client:
        client.send(request() * count)
        for _ in range(count):
            if not expect(ledger, "pipelined", client, {200}):
                return


def half_close(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """A GET, then the client's side shut (FIN) before the answer comes."""
    with connected(target.traffic) as client:
        client.send(request(close=rng.random() < 0.5))
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_WR)
        expect(ledger, "half-close", client, {200})


def reset_mid_request(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """Part of a request (or all of it, or it and part of a body), then a reset instead of a close."""
    whole = request("POST", body=b"x" * 1000) if rng.random() < 0.3 else request()
    client = Client(target.traffic)
    client.send(whole[: rng.randint(0, len(whole))])
    time.sleep(rng.uniform(0, 0.05))
    client.reset()


def silent_churn(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """Silent connections opened in a loop (up to the limit), held, then each closed or reset."""
    held: list[Client] = []
    try:
        for _ in range(rng.randint(4, LIMIT)):
            with contextlib.suppress(OSError):
                held.append(Client(target.traffic))
            time.sleep(rng.uniform(0, 0.01))
        time.sleep(rng.uniform(0.1, 1.5))
    finally:
        for client in held:
            client.reset() if rng.random() < 0.3 else client.close()


def recycling_churn(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """Silent connections in a loop, each new one followed at once by the close (or reset) of the oldest held, as
    `bench/attacks.py`'s recycling attacks do: at the limit, the new client's arrival and the oldest one's close
    reach the worker together."""
    held: collections.deque[Client] = collections.deque()
    keep = rng.randint(4, LIMIT)
    try:
        for _ in range(rng.randint(20, 200)):
            with contextlib.suppress(OSError):
                held.append(Client(target.traffic))
            while len(held) > keep:
                oldest = held.popleft()
                oldest.reset() if rng.random() < 0.3 else oldest.close()
            time.sleep(rng.uniform(0, 0.003))
    finally:
        for client in held:
            client.close()


def partial_head(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """Half a head, then nothing: past the head timeout it must be answered 408, else the client gives up."""
    wait = rng.uniform(0, HEAD_TIMEOUT_SECONDS * 1.5)
    with connected(target.traffic) as client:
        client.send(HALF_A_HEAD[: rng.randint(1, len(HALF_A_HEAD))])
        if wait < HEAD_TIMEOUT_SECONDS:
            time.sleep(wait)
            return
        expect(ledger, "partial head", client, {408}, HEAD_TIMEOUT_SECONDS + ANSWER_SECONDS)


def oversized_head(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """A head over the worker's 64 KiB, with or without its end: 431."""
    filler = b"X-Filler: " + b"a" * (MAX_HEAD_BYTES + rng.randint(1, 8192)) + b"\r\n"
    with connected(target.traffic) as client:
        client.send(HALF_A_HEAD + b"\r\n" + filler + (b"\r\n" if rng.random() < 0.5 else b""))
        expect(ledger, "oversized head", client, {431})


def body_never_sent(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """A POST announcing a body that never comes: answered (405, the app reads no body) and closed."""
    with connected(target.traffic) as client:
        client.send(request("POST", headers=f"Content-Length: {rng.randint(1, 200_000)}\r\n"))
        expect(ledger, "body never sent", client, {405})


def slow_body(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """A POST whose body trickles in over up to 0.3 s; answered 405."""
    body = b"b" * rng.randint(10, 2000)
    with connected(target.traffic) as client:
        client.send(request("POST", headers=f"Content-Length: {len(body)}\r\n"))
        chunk = max(1, len(body) // rng.randint(1, 10))
        for start in range(0, len(body), chunk):
            if not client.send(body[start : start + chunk]):
                break
            time.sleep(rng.uniform(0, 0.03))
        expect(ledger, "slow body", client, {405})


def random_bytes(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """Random bytes ending in a blank line: refused (any 4xx) or closed, never held unanswered."""
    junk = rng.randbytes(rng.randint(1, 3000)) + b"\r\n\r\n"
    with connected(target.traffic) as client:
        client.send(junk)
        got = client.answer(HEAD_TIMEOUT_SECONDS + ANSWER_SECONDS)
        ledger.count(f"random bytes: {got.status or got.outcome}")
        if got.outcome == "hung" or (got.status is not None and not 400 <= got.status < 500):
            ledger.violation(f"random bytes: {got.outcome} {got.status} for {junk[:40]!r}")


BARE_LF_REQUESTS = (
    b"GET / HTTP/1.1\nHost: webapp\n\n",
    b"GET / HTTP/1.1\r\nHost: webapp\n\n",
    b"GET / HTTP/1.1\nHost: webapp\r\n\r\n",
)


def bare_lf(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """A request with bare-LF line endings: accepted (200) or refused (400) at once, never left to time out (408)."""
    with connected(target.traffic) as client:
        client.send(rng.choice(BARE_LF_REQUESTS))
        expect(ledger, "bare LF", client, {200, 400})


def malformed(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """One of `bench/attacks.py`'s malformed requests: refused with a 4xx (a forged X-Forwarded-For is ignored: 200)."""
    with connected(target.traffic) as client:
        client.send(rng.choice(MALFORMED_REQUESTS))
        expect(ledger, "malformed", client, {200, *range(400, 500)})


def made_up_methods(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """Made-up methods over one kept-alive connection: 405 each."""
    methods = odd_methods(rng.randint(1, 20))
    with connected(target.traffic) as client:
        for method in methods:
            if not client.send(request(method)) or not expect(ledger, "made-up methods", client, {405}):
                return


def answer_left_unread(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """A `Connection: close` GET whose answer the client reads only after up to a second."""
    with connected(target.traffic) as client:
        client.send(request(close=True))
        time.sleep(rng.uniform(0, 1.0))
        expect(ledger, "answer left unread", client, {200})


def management_flood(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """Up to 100 silent connections to the management port, held up to a second."""
    held = []
    try:
        for _ in range(rng.randint(10, 100)):
            with contextlib.suppress(OSError):
                held.append(Client(target.management))
        time.sleep(rng.uniform(0.1, 1.0))
    finally:
        for client in held:
            client.close()


def _management_junk() -> list[tuple[bytes, set[int]]]:
    healthz = b"GET /healthz HTTP/1.1\r\nHost: probe\r\n"
    oversized = healthz + b"X-Filler: " + b"a" * (70 * 1024) + b"\r\n\r\n"
    bare = b"GET /healthz HTTP/1.1\nHost: probe\n\n"
    return [(MANAGEMENT_JUNK[0], {414}), (MANAGEMENT_JUNK[1], {400}), (oversized, {431}), (bare, {200, 400})]


MANAGEMENT_REQUESTS = _management_junk()
"""Junk for the management port and the answer each must get."""


def management_junk(rng: random.Random, target: Target, ledger: Ledger) -> None:
    """Oversized lines and heads, a TLS handshake, a bare-LF probe: each refused (or answered) as it should be."""
    data, allowed = rng.choice(MANAGEMENT_REQUESTS)
    with connected(target.management) as client:
        client.send(data)
        expect(ledger, "management junk", client, allowed)


BEHAVIOURS: dict[str, Behaviour] = {
    "silent churn": silent_churn,
    "recycling churn": recycling_churn,
    "keep-alive burst": keep_alive_burst,
    "keep-alive pool": keep_alive_pool,
    "pipelined": pipelined,
    "half-close": half_close,
    "reset": reset_mid_request,
    "partial head": partial_head,
    "oversized head": oversized_head,
    "body never sent": body_never_sent,
    "slow body": slow_body,
    "random bytes": random_bytes,
    "bare LF": bare_lf,
    "malformed": malformed,
    "made-up methods": made_up_methods,
    "answer left unread": answer_left_unread,
}
"""The traffic port's behaviours."""
MANAGEMENT_BEHAVIOURS: dict[str, Behaviour] = {"management flood": management_flood, "management junk": management_junk}


# The run.
def mix(rng: random.Random, behaviours: dict[str, Behaviour]) -> list[int]:
    """A round's weight for each behaviour, 0 (absent: a round without silent clients evicts others) to 4."""
    weights = [rng.choice((0, 1, 2, 4)) for _ in behaviours]
    return weights if any(weights) else [1] * len(weights)


Mix = tuple[dict[str, Behaviour], list[int]]
"""Behaviours and their weights in a round."""


def _clients(mixed: Mix, rng: random.Random, target: Target, ledger: Ledger, until: float) -> None:
    """One client thread: behaviours drawn with this round's weights until the round ends."""
    behaviours, weights = mixed
    names = list(behaviours)
    while time.monotonic() < until:
        name = rng.choices(names, weights)[0]
        ledger.count(f"episode: {name}")
        try:
            behaviours[name](rng, target, ledger)
        except OSError as error:  # a refused or reset connect: the server's right at its limit, not a finding
            ledger.count(f"{name}: {type(error).__name__}")


class Watchdog:
    """Probes /healthz and reads /metrics and the worker's pid while the clients run."""

    def __init__(self, server: RunningServer, ledger: Ledger) -> None:
        self.server = server
        self.ledger = ledger
        self.pids = server.worker_pids()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        beat = 0
        while not self._stop.wait(0.2):
            self.probe()
            beat += 1
            if beat % 3 == 0:
                self.check_worker()

    def probe(self) -> None:
        """One liveness probe, as the kubelet sends it: 200 within its timeout."""
        outcome = self.server.probe("/healthz", timeout=PROBE_TIMEOUT_SECONDS)
        self.ledger.probe_seconds.append(outcome.seconds)
        if outcome.status != 200:
            self.ledger.violation(f"probe /healthz: {outcome.status or outcome.error} after {outcome.seconds:.2f} s")

    def check_worker(self) -> None:
        """The same worker, no crash counted, its connection count within the limit."""
        pids = self.server.worker_pids()
        if pids != self.pids:
            self.ledger.violation(f"worker exited unasked: pids {self.pids} became {pids}; {_crash_lines(self.server)}")
            self.pids = pids
        try:
            samples = self.server.metrics()
        except AssertionError as error:
            self.ledger.violation(f"/metrics: {error}")
            return
        if samples.get("webapp_worker_crashes_total", 0) > self.ledger.counts["crashes seen"]:
            self.ledger.counts["crashes seen"] = int(samples["webapp_worker_crashes_total"])
            self.ledger.violation(f"webapp_worker_crashes_total is {samples['webapp_worker_crashes_total']:g}")
        connections = samples.get("webapp_worker_connections", 0)
        # One over the limit is the worker's design: the client accepted when every other connection is in flight.
        if not 0 <= connections <= LIMIT + 1:
            self.ledger.violation(f"the worker counts {connections:g} connections (limit {LIMIT})")


def _crash_lines(server: RunningServer) -> str:
    """The last traceback the server logged (why a worker died)."""
    tracebacks = [line for line in server.stdout().splitlines() + server.stderr().splitlines() if "Traceback" in line]
    if not tracebacks:
        return "no traceback logged"
    last = json.loads(tracebacks[-1]) if tracebacks[-1].startswith("{") else {"traceback": tracebacks[-1]}
    return str(last.get("traceback", last))[-600:]


def _connections_at_rest(server: RunningServer) -> tuple[float, float, float]:
    samples = server.metrics()
    return (
        samples.get("webapp_worker_connections", float("nan")),
        samples.get("webapp_worker_open_sockets", float("nan")),
        samples.get("webapp_worker_closing_connections", float("nan")),
    )


def check_at_rest(server: RunningServer, ledger: Ledger, label: str, seconds: float = 8.0) -> None:
    """Every client has closed: the worker must come to count no connection and hold no socket."""
    deadline = time.monotonic() + seconds
    while True:
        counts = _connections_at_rest(server)
        if counts == (0, 0, 0):
            return
        if time.monotonic() > deadline:
            ledger.violation(
                f"{label}, every client closed for {seconds:g} s: the worker counts {counts[0]:g} connections, "
                f"the kernel lists {counts[1]:g} open sockets ({counts[2]:g} closing)"
            )
            return
        time.sleep(0.2)


@dataclass(frozen=True)
class Eviction:
    """One `connection_evicted` line of the worker's log."""

    kind: str
    port: int
    heads_held: int
    silent_held: int


def evictions(server: RunningServer) -> list[Eviction]:
    """Every eviction the worker has logged so far."""
    found = []
    for line in server.stdout().splitlines():
        if '"connection_evicted"' in line:
            fields = json.loads(line)
            found.append(Eviction(fields["kind"], fields["remote_port"], fields["heads_held"], fields["silent_held"]))
    return found


def check_evictions(server: RunningServer, ledger: Ledger) -> collections.Counter[str]:
    """Each request closed unanswered was on an evicted connection; nothing that had spoken was evicted while a
    silent connection was held, nor a kept-alive one while a head was arriving. Returns evictions by kind."""
    seen = evictions(server)
    evicted_ports = {eviction.port for eviction in seen}
    for behaviour, port in ledger.lost:
        if port not in evicted_ports:
            ledger.violation(f"{behaviour}: a whole request was closed unanswered, its connection never evicted")
    ledger.lost.clear()
    for eviction in seen[ledger.evictions_checked :]:
        if eviction.kind != "silent" and eviction.silent_held:
            ledger.violation(f"a {eviction.kind} connection evicted while {eviction.silent_held} silent ones were held")
        elif eviction.kind == "idle" and eviction.heads_held:
            ledger.violation(f"a kept-alive connection evicted while {eviction.heads_held} heads were arriving")
    ledger.evictions_checked = len(seen)
    return collections.Counter(eviction.kind for eviction in seen)


def check_graceful_stop(server: RunningServer, ledger: Ledger, requests: int = 3) -> None:
    """Requests in flight when the server is told to stop are answered, and the server exits 0."""
    with ThreadPoolExecutor(max_workers=requests) as pool:
        answers = [pool.submit(get, server.port, "/debug/sleep?seconds=1", 10.0) for _ in range(requests)]
        deadline = time.monotonic() + 5.0
        while server.metrics().get("webapp_http_requests_in_flight", 0) < requests and time.monotonic() < deadline:
            time.sleep(0.05)
        code = server.terminate(signal.SIGTERM)
        statuses = [answer.result().status for answer in answers]
    if statuses != [200] * requests or code != 0:
        ledger.violation(f"stopping with {requests} requests in flight: answered {statuses}, exit code {code}")


@dataclass
class Report:
    """What a run did and found."""

    seed: int
    seconds: float
    counts: collections.Counter[str]
    evicted: collections.Counter[str]
    probe_seconds: list[float]
    violations: list[str]

    def render(self) -> str:
        """The figures, then the violations: one line per kind, with its count and its first instance."""
        episodes = {k.removeprefix("episode: "): v for k, v in sorted(self.counts.items()) if k.startswith("episode")}
        outcomes = {k: v for k, v in sorted(self.counts.items()) if not k.startswith("episode")}
        probes = sorted(self.probe_seconds)
        slowest = probes[-1] if probes else float("nan")
        lines = [
            f"adversary seed {self.seed} (replay: ADVERSARY_SEED={self.seed}); {self.seconds:.0f} s, limit {LIMIT}",
            f"episodes: {sum(episodes.values())} {episodes}",
            f"outcomes: {outcomes}",
            f"evictions: {dict(self.evicted)}",
            f"probes: {len(probes)}, slowest {slowest * 1000:.0f} ms (timeout {PROBE_TIMEOUT_SECONDS:g} s)",
            f"violations: {len(self.violations)}",
        ]
        kinds: dict[str, list[str]] = {}
        for text in self.violations:  # grouped with their numbers left out, each shown by its first instance
            kinds.setdefault(re.sub(r"-?\d+", "N", text.split("\n", 1)[0]), []).append(text)
        for examples in sorted(kinds.values(), key=len, reverse=True):
            lines.append(f"  {len(examples)} x {examples[0]}")
        return "\n".join(lines)


def run(server: RunningServer, seed: int, seconds: float, *, stop_at_end: bool = True) -> Report:
    """Attack a ready server (started with SERVER_COMMAND and SERVER_ENV) for about `seconds`, in rounds."""
    ledger = Ledger(seed)
    target = Target(server.port, server.management_port)
    evicted: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    rounds = max(1, round(seconds / ROUND_SECONDS))
    with Watchdog(server, ledger):
        for number in range(rounds):
            _round(target, ledger, seed, number)
            check_at_rest(server, ledger, f"after round {number + 1}")
            evicted = check_evictions(server, ledger)
    if stop_at_end:
        check_graceful_stop(server, ledger)
    return Report(seed, time.monotonic() - started, ledger.counts, evicted, ledger.probe_seconds, ledger.violations)


def _round(target: Target, ledger: Ledger, seed: int, number: int) -> None:
    """One round: TRAFFIC_CLIENTS and MANAGEMENT_CLIENTS threads sharing the round's mix, each with its own seeded
    choices."""
    until = time.monotonic() + ROUND_SECONDS
    round_rng = random.Random(f"{seed}:{number}")
    mixes: dict[int, Mix] = {id(group): (group, mix(round_rng, group)) for group in (BEHAVIOURS, MANAGEMENT_BEHAVIOURS)}
    plan = [(BEHAVIOURS, f"traffic {i}") for i in range(TRAFFIC_CLIENTS)]
    plan += [(MANAGEMENT_BEHAVIOURS, f"management {i}") for i in range(MANAGEMENT_CLIENTS)]
    with ThreadPoolExecutor(max_workers=len(plan)) as pool:
        futures = [
            pool.submit(_clients, mixes[id(group)], random.Random(f"{seed}:{number}:{name}"), target, ledger, until)
            for group, name in plan
        ]
        for future in futures:
            future.result()

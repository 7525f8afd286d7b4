"""The canary's analysis: one check of its requests against the stack's objectives, asked of a real Prometheus.

A check reads three instant queries over the last `analysis.intervalSeconds`, on the canary's own series
(`job="<name>-canary"`, what its ServiceMonitor gives them): how many requests it answered, the share that failed
with a 5xx, the share slower than `metrics.latencyObjectiveSeconds`. The shares are the very expressions the
PrometheusRule records (`components.alert_rules`), so the canary is judged as the alerts would judge it. A share
divided by its objective's budget is a burn rate; a check fails when either burns faster than
`analysis.burnRateThreshold`. Too few requests, a share that cannot be measured (its series missing, NaN), or no
whole answer from Prometheus within the query's deadline judges nothing: the driver then fails a step in which no
check passed, so a canary is never promoted on silence, nor on one objective measured and the other not.

What the app's metrics cannot see is read from the Kubernetes API (`with_pods`): a canary pod that restarted (a
crash, an OOM kill, a failed liveness probe: its requests in flight never reach the metrics) fails the check; one
not Ready (its requests go to the others, or nowhere) leaves it inconclusive, as do pods that cannot be read.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import math
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tools.canary_target import PodState
from webapp_platform.components.alert_rules import Scope, duration, failed_ratio, slow_ratio
from webapp_platform.config.canary import CanaryAnalysis
from webapp_platform.config.monitoring import MetricsSettings

QUERY_TIMEOUT_SECONDS = 10
"""A query's whole answer (connecting, sending, every byte of the answer) within this many seconds, or none."""
MAX_ANSWER_BYTES = 1_000_000
Query = Callable[[str], float | None]
"""A PromQL instant query -> its single value (None: no series, NaN, or Prometheus could not answer)."""


class PrometheusUnavailable(Exception):
    """Prometheus did not answer a query: unreachable, an HTTP error, too slow, or an answer that is not a result."""


@dataclass
class _Deadline:
    """The sockets one query opened, cut (shut down, which wakes a blocked read) when its deadline passes (`ends`,
    on the monotonic clock): a socket timeout bounds each read, and an answer trickled a byte at a time would pass
    every one of them. Connecting is bounded by the time left (`connect`), which a cut cannot wake."""

    ends: float
    expired: threading.Event = field(default_factory=threading.Event)
    sockets: list[socket.socket] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def opened(self, sock: socket.socket) -> None:
        """A connection of the query's is open: cut it at the deadline (at once if it has passed)."""
        with self.lock:
            self.sockets.append(sock)
            if self.expired.is_set():
                _cut(sock)

    def expire(self) -> None:
        """The deadline passed: cut every connection of the query's."""
        with self.lock:
            self.expired.set()
            for sock in self.sockets:
                _cut(sock)

    def passed(self) -> bool:
        """Whether the deadline has passed (its timer may not have run yet)."""
        return self.expired.is_set() or time.monotonic() >= self.ends

    def connect(
        self, address: tuple[str, int], timeout: object = None, source_address: tuple[str, int] | None = None
    ) -> socket.socket:
        """socket.create_connection within the time left: each address the name resolves to is tried with what
        remains of the deadline (create_connection gives each the whole timeout), the socket watched from before
        its connect; TimeoutError once none remains. `timeout` is ignored: the deadline is the query's. The name's
        resolution itself (getaddrinfo) is not bounded: nothing can interrupt it."""
        host, port = address
        errors: list[OSError] = []
        for family, kind, proto, _, resolved in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            if self.passed():
                break
            sock = socket.socket(family, kind, proto)
            try:
                self.opened(sock)
                sock.settimeout(max(self.ends - time.monotonic(), 0.001))
                if source_address:
                    sock.bind(source_address)
                sock.connect(resolved)
            except OSError as error:
                self._closed(sock)
                errors.append(error)
                continue
            return sock
        if not self.passed():
            raise errors[-1] if errors else OSError(f"{host}: getaddrinfo returns an empty list")
        raise TimeoutError(f"connecting to {host}:{port}: no time left of the query's deadline ({len(errors)} tried)")

    def _closed(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.remove(sock)
        sock.close()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTP(http.client.HTTPConnection):
    """An HTTP connection that connects within its query's deadline, and is cut when it passes."""

    def __init__(self, host: str, *, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._deadline = deadline
        self._create_connection = deadline.connect


class _WatchedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection that connects within its query's deadline, and is cut when it passes."""

    def __init__(self, host: str, *, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._deadline = deadline
        self._create_connection = deadline.connect

    def connect(self) -> None:
        """Connect (within the deadline), then the TLS handshake; the TLS socket watched from then on."""
        super().connect()
        self._deadline.opened(self.sock)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTP, deadline=self._deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTPS, deadline=self._deadline), req)


def fetch(address: str, seconds: float) -> bytes:
    """GET `address` through urllib (proxies and redirects as it handles them), the whole answer within `seconds`
    or PrometheusUnavailable; at most MAX_ANSWER_BYTES of it."""
    deadline = _Deadline(time.monotonic() + seconds)
    opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline))
    timer = threading.Timer(seconds, deadline.expire)
    timer.daemon = True
    timer.start()
    try:
        with opener.open(address, timeout=seconds) as response:
            body: bytes = response.read(MAX_ANSWER_BYTES)
    except (OSError, http.client.HTTPException) as error:
        if deadline.passed():
            raise PrometheusUnavailable(f"no whole answer within {seconds:g} s") from error
        raise PrometheusUnavailable(str(error)) from error
    finally:
        timer.cancel()
    if deadline.passed():
        raise PrometheusUnavailable(f"no whole answer within {seconds:g} s")
    return body


def prometheus_query(url: str) -> Query:
    """Instant queries against the Prometheus HTTP API at `url` (e.g. http://prometheus.monitoring:9090), each
    answered whole within QUERY_TIMEOUT_SECONDS."""

    def query(expression: str) -> float | None:
        address = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
        try:
            answer = json.loads(fetch(address, QUERY_TIMEOUT_SECONDS))
        except PrometheusUnavailable as error:
            raise PrometheusUnavailable(f"{url}: {error}") from error
        except ValueError as error:
            raise PrometheusUnavailable(f"{url}: {error}") from error
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise PrometheusUnavailable(f"{url}: {str(answer)[:300]}")
        try:
            result = answer["data"]["result"]
            value = float(result[0]["value"][1]) if result else math.nan
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise PrometheusUnavailable(f"{url}: an answer that is not a vector: {str(answer)[:300]}") from error
        return None if math.isnan(value) else value

    return query


@dataclass(frozen=True)
class Objectives:
    """What the canary is held to: the stack's availability and latency objectives, as budgets (shares allowed to
    fail, and to be slow), and the analysis's burn threshold and request floor."""

    availability_budget: float
    latency_budget: float
    latency_seconds: float
    burn_rate_threshold: float
    min_requests: int

    @classmethod
    def of(cls, metrics: MetricsSettings, analysis: CanaryAnalysis) -> Objectives:
        """The stack's objectives (metrics.*) with the canary's analysis settings."""
        return cls(
            availability_budget=metrics.availability_budget,
            latency_budget=metrics.latency_budget,
            latency_seconds=metrics.latency_objective_seconds,
            burn_rate_threshold=analysis.burn_rate_threshold,
            min_requests=analysis.min_requests,
        )


Verdict = Literal["passed", "failed", "inconclusive"]


@dataclass(frozen=True)
class Check:
    """One check's values and verdict, and in words what it saw."""

    verdict: Verdict
    requests: float
    failed_share: float | None
    slow_share: float | None
    reason: str


def check_canary(query: Query, scope: Scope, window_seconds: int, objectives: Objectives) -> Check:
    """Judge the canary's last `window_seconds` of requests (its series selected by `scope`)."""
    window = duration(window_seconds)
    try:
        requests = query(f"sum(increase({scope.names.requests}{scope.app()}[{window}]))") or 0.0
        failed = query(failed_ratio(scope, window))
        slow = query(slow_ratio(scope, window, objectives.latency_seconds))
    except PrometheusUnavailable as error:
        return Check("inconclusive", 0.0, None, None, f"Prometheus did not answer ({error})")
    if requests < objectives.min_requests:
        return Check(
            "inconclusive",
            requests,
            failed,
            slow,
            f"{requests:.0f} requests in {window}, fewer than minRequests {objectives.min_requests}",
        )
    problems = []
    limit = objectives.burn_rate_threshold
    if failed is not None and failed / objectives.availability_budget > limit:
        problems.append(
            f"availability: {failed:.2%} of {requests:.0f} requests failed with a 5xx in {window}, a burn rate of "
            f"{failed / objectives.availability_budget:.1f} (threshold {limit:g}, budget "
            f"{objectives.availability_budget:.2%})"
        )
    if slow is not None and slow / objectives.latency_budget > limit:
        problems.append(
            f"latency: {slow:.2%} of {requests:.0f} requests took longer than {objectives.latency_seconds:g} s in "
            f"{window}, a burn rate of {slow / objectives.latency_budget:.1f} (threshold {limit:g}, budget "
            f"{objectives.latency_budget:.2%})"
        )
    if problems:
        return Check("failed", requests, failed, slow, "; ".join(problems))
    bound = objectives.latency_seconds
    if failed is None or slow is None:
        unmeasured = [
            what
            for what, share in (
                (f"availability ({scope.names.requests} by status)", failed),
                (f"latency ({scope.names.duration_bucket} at {bound:g} s)", slow),
            )
            if share is None
        ]
        return Check(
            "inconclusive",
            requests,
            failed,
            slow,
            f"{requests:.0f} requests in {window}, but {' and '.join(unmeasured)} not measured: the series is "
            "missing or NaN",
        )
    seen = f"{requests:.0f} requests, {failed:.2%} failed, {slow:.2%} slower than {bound:g} s"
    return Check("passed", requests, failed, slow, seen)


def restarts_since(pods: Sequence[PodState], baseline: Mapping[str, int]) -> dict[str, int]:
    """Each pod's restarts since `baseline` (restarts by pod when the step's pods were first seen; a pod not in it
    was created since, so all its restarts count), for those that restarted."""
    grown = {pod.name: pod.restarts - baseline.get(pod.name, 0) for pod in pods}
    return {name: count for name, count in grown.items() if count > 0}


def with_pods(check: Check, pods: Sequence[PodState] | str, baseline: Mapping[str, int]) -> Check:
    """`check` (Prometheus's verdict) judged with the canary's pods as the Kubernetes API shows them (`pods`; a
    string: why they could not be read) against their restarts when the step's pods were first seen (`baseline`):
    restarts since then fail it, naming the pods; a pod not Ready, no pod, or pods that could not be read make it
    inconclusive unless Prometheus failed it (a failure measured stands); otherwise Prometheus's verdict stands."""
    if isinstance(pods, str):
        unseen = f"the canary's pods could not be read: {pods}"
        return (
            check if check.verdict == "failed" else replace(check, verdict="inconclusive", reason=_and(unseen, check))
        )
    restarted = restarts_since(pods, baseline)
    if restarted:
        names = ", ".join(sorted(restarted))
        crashed = f"the canary's pods restarted {sum(restarted.values())} time(s) ({names})"
        reason = crashed if check.verdict != "failed" else f"{crashed}; {check.reason}"
        return replace(check, verdict="failed", reason=reason)
    if check.verdict == "failed":
        return check
    unready = sorted(pod.name for pod in pods if not pod.ready)
    if not pods:
        return replace(check, verdict="inconclusive", reason=_and("no canary pods found", check))
    if unready:
        not_ready = f"{len(unready)} of {len(pods)} canary pods not Ready ({', '.join(unready)})"
        return replace(check, verdict="inconclusive", reason=_and(not_ready, check))
    return check


def _and(pods: str, check: Check) -> str:
    """What was seen of the pods, then what Prometheus showed."""
    return f"{pods}; Prometheus: {check.reason}"

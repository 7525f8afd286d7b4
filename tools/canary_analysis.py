"""The canary's analysis: one check of its requests against the stack's objectives, asked of a real Prometheus.

A check reads three instant queries over the last `analysis.intervalSeconds`, on the canary's own series
(`job="<name>-canary"`, what its ServiceMonitor gives them): how many requests it answered, the share that failed
with a 5xx, the share slower than `metrics.latencyObjectiveSeconds`. The shares are the very expressions the
PrometheusRule records (`components.alert_rules`), so the canary is judged as the alerts would judge it. A share
divided by its objective's budget is a burn rate; a check fails when either burns faster than
`analysis.burnRateThreshold`. Too few requests, or no answer from Prometheus, judges nothing: the driver then
fails a step that judged nothing, so a canary is never promoted on silence.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from webapp_platform.components.alert_rules import Scope, duration, failed_ratio, slow_ratio
from webapp_platform.config.canary import CanaryAnalysis
from webapp_platform.config.monitoring import MetricsSettings

QUERY_TIMEOUT_SECONDS = 10
Query = Callable[[str], float | None]
"""A PromQL instant query -> its single value (None: no series, NaN, or Prometheus could not answer)."""


class PrometheusUnavailable(Exception):
    """Prometheus did not answer a query: unreachable, an HTTP error, or an answer that is not a result."""


def prometheus_query(url: str) -> Query:
    """Instant queries against the Prometheus HTTP API at `url` (e.g. http://prometheus.monitoring:9090)."""

    def query(expression: str) -> float | None:
        address = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
        try:
            with urllib.request.urlopen(address, timeout=QUERY_TIMEOUT_SECONDS) as response:
                answer = json.loads(response.read(1_000_000))
        except (OSError, ValueError) as error:
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
    bound = objectives.latency_seconds
    seen = f"{requests:.0f} requests, {failed or 0:.2%} failed, {slow or 0:.2%} slower than {bound:g} s"
    if problems:
        return Check("failed", requests, failed, slow, "; ".join(problems))
    return Check("passed", requests, failed, slow, seen)

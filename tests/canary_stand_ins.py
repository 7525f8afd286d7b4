"""Stand-ins for the canary driver's tests: a fake stack keeping its three places apart (the stack file, the Pulumi
state and the cluster) with a fault injectable at any call, and a real HTTP Prometheus whose answers a test scripts.

The fake is what the driver's decisions are checked against: a kill before or during any call, a failed `up`, a
second run started while one runs. Its `up` applies a release the way the program orders it (a release's canary
first; a rollback's or promotion's stable pods and route first, the canary's objects last), so a fault leaves the
cluster between two versions as a real one would. The Prometheus is a real `http.server` on 127.0.0.1, so the
driver's own client (its deadline included) reads every answer, trickled ones too."""

from __future__ import annotations

import copy
import dataclasses
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.stack_values import valid_config
from tools import canary as driver
from tools.canary import Release
from tools.canary_analysis import Query
from tools.canary_state import Version as StableVersion
from tools.canary_target import PodState, PodsUnavailable
from webapp_platform.config.loading import parse_settings_only
from webapp_platform.config.settings import StackSettings

STABLE_DIGEST = "sha256:" + "a" * 64
NEW_DIGEST = "sha256:" + "b" * 64
STABLE = f"ghcr.io/example/webapp:1.0.0@{STABLE_DIGEST}"
NEW = f"ghcr.io/example/webapp:2.0.0@{NEW_DIGEST}"
OTHER = f"ghcr.io/example/webapp:3.0.0@{'sha256:' + 'c' * 64}"
MANUAL = f"ghcr.io/example/webapp:4.0.0@{'sha256:' + 'd' * 64}"
"""A version only ever deployed by hand (never released through the canary)."""


def stack_settings(**analysis: Any) -> dict[str, Any]:
    """A canary stack's settings as its stack file holds them: two steps of two checks each."""
    raw = valid_config(
        image={"repository": "ghcr.io/example/webapp", "tag": "1.0.0", "digest": STABLE_DIGEST},
        metrics={"serviceMonitor": True},
        appConfig={"GREETING": "Hello"},
        canary={
            "enabled": True,
            "steps": [{"weight": 20, "seconds": 20}, {"weight": 50, "seconds": 20}],
            "analysis": {"intervalSeconds": 10, "minRequests": 20, **analysis},
        },
    )
    raw.pop("secrets", None)
    return raw


Version = tuple[str, tuple[tuple[str, str], ...]]
"""A version as the places compare it: the image reference and the appConfig's items, sorted."""


def version_of(image: Mapping[str, Any], app_config: Mapping[str, str]) -> Version:
    """The version an image setting and an appConfig make."""
    return f"{image['repository']}:{image['tag']}@{image['digest']}", tuple(sorted(app_config.items()))


def release_version(release: Release) -> Version:
    """The version a driver's `Release` is."""
    return release.image.reference, tuple(sorted(release.app_config.items()))


@dataclass(frozen=True)
class Deployed:
    """What one place runs: the stable version, and the canary's version and weight (None: no canary)."""

    stable: Version
    canary: Version | None = None
    weight: int | None = None


FaultKind = Literal["kill before", "kill during", "fail", "concurrent"]


CALLS = (
    "up",
    "set_release",
    "write_stable",
    "recover",
    "sleep",
    "query",
    "settings",
    "deployed_canary",
    "canary_pods",
)
"""The calls a run makes that a fault can hit: the stack's, and the driver's waits and Prometheus queries."""


@dataclass(frozen=True)
class Fault:
    """A fault at a run's `nth` call (from 0) named `call`: a kill before it or during it, a failed `up` (at a
    call that is not an `up`, nothing), or a second run started while this call is under way."""

    call: str
    nth: int
    kind: FaultKind


PodEvent = Literal["fine", "restart", "not ready", "error"]
"""What befalls the canary's pods in the wait before a check: nothing; one of them restarts (a crash, an OOM kill,
a failed liveness probe); one is not Ready for that check; the Kubernetes API errs for that check."""
POD_EVENTS: tuple[PodEvent, ...] = ("fine", "restart", "not ready", "error")


def canary_pod_count(weight: int | None) -> int:
    """The fake's canary pods at `weight`: one at 20 %, two at 50 % (a step adds pods and keeps the old)."""
    return 0 if weight is None else 1 if weight < 50 else 2


@dataclass
class FakeStack:
    """A stack whose stack file (`config`), Pulumi state (`state`, `deployed` its `canary` output, `pending`,
    `locked`) and cluster (`cluster`) are kept apart, and which records each `up` (`ups`), each call (`calls`) and
    each fault that struck (`fired`); the `up`s numbered in `failing_ups` (from 0, counting failed ones) fail.
    The cluster's canary pods (`pods`) are created with the canary and added to at a larger weight; each wait
    between checks applies the next of `pod_script` to them (then "fine"), and `step_restarts` counts their
    restarts since the cluster's canary last changed (version or weight: its step began)."""

    config: dict[str, Any]
    home: Path = Path("/nonexistent")
    deployed: dict[str, Any] | None = None
    failing_ups: tuple[int, ...] = ()
    fault: Fault | None = None
    during: Callable[[], None] = lambda: None
    ups: list[dict[str, Any]] = field(default_factory=list)
    recovered: list[bool] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    fired: list[Fault] = field(default_factory=list)
    pending: bool = False
    locked: bool = False
    pod_script: list[PodEvent] = field(default_factory=list)
    pod_event: PodEvent = "fine"
    pods: dict[str, PodState] = field(default_factory=dict)
    step_restarts: int = 0
    pod_reads: int = 0

    def __post_init__(self) -> None:
        stable = version_of(self.config["image"], self.config.get("appConfig", {}))
        canary = None if self.deployed is None else self._version_of_output(self.deployed)
        weight = None if self.deployed is None else int(self.deployed["weight"])
        self.state = self.cluster = Deployed(stable, canary, weight)
        self._pods_follow(None)

    @staticmethod
    def _version_of_output(output: Mapping[str, Any]) -> Version:
        return str(output["image"]), tuple(sorted(dict(output["appConfig"]).items()))

    def point(self, name: str) -> FaultKind | None:
        """Count a call; kill before it, or start a second run, when the fault says so; else the fault's kind here
        (what the call itself does with it)."""
        self.calls.append(name)
        if self.fault is None or (self.fault.call, self.fault.nth) != (name, self.calls.count(name) - 1):
            return None
        self.fired.append(self.fault)
        kind = self.fault.kind
        if kind == "kill before":
            raise KeyboardInterrupt
        if kind == "concurrent":
            self.during()
            return None
        return kind

    def _wrote(self, kind: FaultKind | None) -> None:
        """A config write whose call was killed after it landed (the CLI wrote the file, the driver never knew)."""
        if kind == "kill during":
            raise KeyboardInterrupt

    def wait(self, seconds: float) -> None:
        """The driver's wait between checks (not waited): a point a kill can land in, and where the next of
        `pod_script` befalls the canary's pods."""
        if self.point("sleep") is not None:
            raise KeyboardInterrupt
        self.pod_event = self.pod_script.pop(0) if self.pod_script else "fine"
        if self.pod_event == "restart" and self.pods:
            name = sorted(self.pods)[0]
            self.pods[name] = dataclasses.replace(self.pods[name], restarts=self.pods[name].restarts + 1)
            self.step_restarts += 1

    def _pods_follow(self, before: Deployed | None) -> None:
        """The canary's pods after the cluster changed from `before`: none without a canary, new ones for a new
        version, more kept and added at a larger weight; its step begins anew when its version or weight changed."""
        self.pod_event = "fine"
        now = self.cluster
        if before is not None and (before.canary, before.weight) == (now.canary, now.weight):
            return
        self.step_restarts = 0
        if now.canary is None:
            self.pods = {}
            return
        if before is None or before.canary != now.canary:
            self.pods = {}
        for number in range(len(self.pods), canary_pod_count(now.weight)):
            name = f"webapp-dev-canary-{len(self.ups)}-{number}"
            self.pods[name] = PodState(name, True, 0)

    def pods_condition(self) -> tuple[bool, PodEvent]:
        """What a check sees of the canary's pods now: whether they restarted in the step, and this check's event."""
        return self.step_restarts > 0, self.pod_event

    # The driver's Target.

    @property
    def state_dir(self) -> Path:
        """Where the driver keeps its release state and lock beside the stack file."""
        return self.home

    def settings(self) -> StackSettings:
        """The stack file's settings."""
        self.point("settings")
        return parse_settings_only(copy.deepcopy(self.config))

    def deployed_canary(self) -> dict[str, Any] | None:
        """The Pulumi state's `canary` output."""
        self.point("deployed_canary")
        return self.deployed

    def canary_pods(self, namespace: str, selector: Mapping[str, str]) -> list[PodState]:
        """The cluster's canary pods (one not Ready, or an API error, when this check's event says so)."""
        self.point("canary_pods")
        self.pod_reads += 1
        assert selector.get("track") == "canary", selector
        if self.pod_event == "error":
            raise PodsUnavailable("the Kubernetes API answered 503 Service Unavailable")
        pods = [self.pods[name] for name in sorted(self.pods)]
        if self.pod_event == "not ready" and pods:
            pods[-1] = dataclasses.replace(pods[-1], ready=False)
        return pods

    def set_release(self, release: Release, weight: int) -> None:
        """`canaryRelease` into the stack file."""
        kind = self.point("set_release")
        self.config["canaryRelease"] = release.setting(weight)
        self._wrote(kind)

    def write_stable(self, version: StableVersion) -> None:
        """The stack file's stable version set to `version` and `canaryRelease` removed (killed during: the image
        landed, not the rest, as a kill between two of the CLI's config calls leaves it)."""
        kind = self.point("write_stable")
        image = {"repository": version.repository, "tag": version.tag, "digest": version.digest}
        self.config["image"] = {key: value for key, value in image.items() if value is not None}
        if kind == "kill during":
            raise KeyboardInterrupt
        self.config["appConfig"] = dict(version.app_config)
        self.config.pop("canaryRelease", None)

    def recover(self, *, cancel_stale: bool) -> list[str]:
        """Cancel the lock a killed update left (when asked); refresh away its pending operations."""
        kind = self.point("recover")
        self.recovered.append(cancel_stale)
        done = []
        if cancel_stale and self.locked:
            self.locked = False
            done.append("cancelled the update a killed run left")
        if self.pending:
            if self.locked:
                raise driver.UpFailed("error: the stack is locked by an update a killed run left")
            self.state, self.pending = self.cluster, False
            done.append("refreshed the state")
        self._wrote(kind)
        return done

    def up(self) -> None:
        """`pulumi up` of the stack file; a fault leaves the cluster part-way (and, killed, the state pending and
        locked; failed, the state recording what was done)."""
        kind = self.point("up")
        if self.locked:
            raise driver.UpFailed("error: the stack is locked by an update a killed run left")
        self.settings()  # the program validates what it is given
        release = self.config.get("canaryRelease")
        stable = version_of(self.config["image"], self.config.get("appConfig", {}))
        canary = None if release is None else version_of(release["image"], release["appConfig"])
        desired = Deployed(stable, canary, None if release is None else int(release["weight"]))
        if len(self.ups) in self.failing_ups:
            kind = "fail"
        before = self.cluster
        if kind in ("fail", "kill during"):
            # A release's canary comes first; a rollback's or promotion's stable version (and the route) first.
            if desired.canary is not None:
                self.cluster = Deployed(self.cluster.stable, desired.canary, desired.weight)
            else:
                self.cluster = Deployed(desired.stable, self.cluster.canary, self.cluster.weight)
            self._pods_follow(before)
            if kind == "kill during":
                self.pending = self.locked = True
                raise KeyboardInterrupt
            self.state = self.cluster
            self.ups.append({"failed": True})
            raise driver.UpFailed("error: the Deployment's rollout failed: CrashLoopBackOff")
        self.ups.append({"image": self.config["image"]["tag"], "canary": copy.deepcopy(release)})
        self.state = self.cluster = desired
        self._pods_follow(before)
        self.deployed = (
            None
            if release is None
            else {"image": canary and canary[0], "appConfig": release["appConfig"], "weight": release["weight"]}
        )

    def deploy_by_hand(self, image: str, app_config: Mapping[str, str]) -> None:
        """What an operator does without the driver (tools.promote and `pulumi up`, as the runbook does for dev and
        staging), after taking any canary out by hand: `pulumi cancel`, `canaryRelease` out of the stack file,
        `image` and `app_config` in, and an `up` (its refresh clearing what a killed update left pending)."""
        self.fault = None
        self.locked = False
        if self.pending:
            self.state, self.pending = self.cluster, False
        repository, _, rest = image.partition(":")
        tag, _, digest = rest.partition("@")
        self.config.pop("canaryRelease", None)
        self.config["image"] = {"repository": repository, "tag": tag, "digest": digest}
        self.config["appConfig"] = dict(app_config)
        self.up()

    # What the tests read.

    def disagreement(self, version: Version) -> list[str]:
        """How the stack file, the Pulumi state and the cluster differ from all running `version` and nothing else."""
        problems = []
        config_version = version_of(self.config["image"], self.config.get("appConfig", {}))
        if config_version != version or "canaryRelease" in self.config:
            problems.append(f"the stack file: {config_version}, canaryRelease {self.config.get('canaryRelease')}")
        at_rest = Deployed(version)
        if self.state != at_rest or self.deployed is not None or self.pending:
            problems.append(f"the Pulumi state: {self.state}, output {self.deployed}, pending {self.pending}")
        if self.cluster != at_rest:
            problems.append(f"the cluster: {self.cluster}")
        return problems

    def snapshot(self) -> tuple[Any, ...]:
        """Everything the three places hold, to compare before and after a run that must change nothing."""
        return copy.deepcopy(self.config), self.state, self.deployed, self.cluster, self.pending, self.locked


Mode = Literal[
    "healthy", "failing", "slow", "no latency", "no availability", "nan", "few", "error", "trickled", "empty answer"
]
"""What a check's three queries are answered: every objective met (the only healthy one); a fifth of requests
failing; half of them slow; the latency (histogram) or availability series missing; NaN; too few requests; a 503;
a healthy answer trickled byte by byte past the client's deadline; a 200 with no body."""

MODES: tuple[Mode, ...] = (
    "healthy",
    "failing",
    "slow",
    "no latency",
    "no availability",
    "nan",
    "few",
    "error",
    "trickled",
    "empty answer",
)
FAILING_MODES = ("failing", "slow")
"""The modes whose checks are judged failed: objectives measured, and burning."""


def _vector(value: str | None) -> bytes:
    result = [] if value is None else [{"metric": {}, "value": [1, value]}]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def _answer(mode: Mode, kind: str) -> tuple[int, bytes]:
    """The status and body a check in `mode` gets for a query of `kind` (requests, failed or slow)."""
    if mode == "error":
        return 503, b"overloaded"
    if mode == "empty answer":
        return 200, b""
    values = {"requests": "600", "failed": "0", "slow": "0"}
    changes: dict[str, dict[str, str | None]] = {
        "failing": {"failed": "0.2"},
        "slow": {"slow": "0.5"},
        "no latency": {"slow": None},
        "no availability": {"failed": None},
        "nan": {"slow": "NaN"},
        "few": {"requests": "3"},
    }
    return 200, _vector({**values, **changes.get(mode, {})}[kind])


@dataclass
class Served:
    """One check as Prometheus answered it: its mode, what the cluster's canary was at its first query, and how many
    of its three queries were answered (a check is judged only on all three); and its canary's pods then: whether
    they had restarted since the step began, and the check's pod event."""

    mode: Mode
    canary: Version | None
    weight: int | None
    answered: int = 0
    restarted: bool = False
    pods: PodEvent = "fine"


@dataclass
class PrometheusStandIn:
    """A real HTTP Prometheus on 127.0.0.1 answering /api/v1/query for the canary's checks, one mode per check
    from `script`, then healthy ones (a fault that passes), recording each check it served (`served`); `observe`
    says what the cluster runs."""

    script: list[Mode] = field(default_factory=lambda: ["healthy"])
    observe: Callable[[], Deployed | None] = lambda: None
    observe_pods: Callable[[], tuple[bool, PodEvent]] = lambda: (False, "fine")
    trickle_gap: float = 0.005
    served: list[Served] = field(default_factory=list)
    url: str = ""
    script_from: int = 0

    def answer_with(self, script: list[Mode]) -> None:
        """The next checks' modes, in turn, then healthy ones."""
        self.script, self.script_from = script, len(self.served)

    def answer(self, query: str) -> tuple[int, bytes, Mode]:
        """The status, body and mode for one query (a check begins with its request count)."""
        kind = "requests" if "increase(" in query else "failed" if 'status=~"5.."' in query else "slow"
        if kind == "requests":
            number = len(self.served) - self.script_from
            mode = self.script[number] if number < len(self.script) else "healthy"
            seen = self.observe()
            restarted, pods = self.observe_pods()
            canary, weight = (None, None) if seen is None else (seen.canary, seen.weight)
            self.served.append(Served(mode, canary, weight, restarted=restarted, pods=pods))
        check = self.served[-1] if self.served else Served("healthy", None, None)
        check.answered += 1
        status, body = _answer("healthy" if check.mode == "trickled" else check.mode, kind)
        return status, body, check.mode

    @contextmanager
    def running(self) -> Iterator[PrometheusStandIn]:
        """Serve on a free port (`url`) until the block ends."""
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("query", [""])[0]
                status, body, mode = stand_in.answer(query)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if mode != "trickled":
                        self.wfile.write(body)
                        return
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(stand_in.trickle_gap)
                except OSError:
                    pass  # the client gave up on it

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def run_driver(stack: FakeStack, query: Query, *argv: str) -> tuple[int, list[str]]:
    """`python -m tools.canary --stack prod ...` on `stack` with Prometheus answering `query`: its exit code and the
    lines it logged."""
    lines: list[str] = []
    code = driver.main(
        ["--stack", "prod", "--prometheus", "http://prometheus.invalid", *argv],
        lambda args: stack,
        query_factory=lambda url: query,
        sleep=stack.wait,
        log=lines.append,
    )
    return code, lines

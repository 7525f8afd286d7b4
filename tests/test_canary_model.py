"""A model-based search for the release driver's next hole: hypothesis's stateful testing runs tools/canary.py's
`main` again and again on one fake stack (tests/canary_stand_ins.py: its stack file, Pulumi state and cluster kept
apart) judged by a real HTTP Prometheus, with a fault at a random point of each run: a kill before or during any
call, a failed `up`, a second run started meanwhile; Prometheus answering healthy, failing, slow, with a series
missing, NaN, too few requests, a 503, nothing, or a healthy answer trickled past the client's deadline; the
canary's pods restarting, not Ready, or the Kubernetes API erring in the wait before a check. Between
runs, an operator may take the canary out and deploy a version by hand (without the driver), leaving whatever
release state a killed run left behind.

What must hold, whatever the sequence:
- a release is promoted only when, in each of its steps, a check it completed saw every objective measured and
  met and every canary pod Ready with none restarted since the step began, and no more checks failed over the whole
  release (across its resumed runs) than maxFailedChecks allows, a check that saw its pods restarted counting as
  failed; so never past a step in which its pods restarted (with no failed check allowed) or were not Ready at
  every check; a release whose rollback had begun is never promoted;
- a run or an `--abort` that ends saying the stack runs a version (promoted, rolled back, nothing to do) leaves the
  stack file, the Pulumi state and the cluster all on that one version, and a rollback or abort on the stable one;
- a run started while another runs on the stack refuses to start and changes nothing;
- a version deployed by hand is the stable one from then on: no run or `--abort` after it goes back to a version
  a release state left from before it names;
- at the end, an `--abort` without faults brings everything back to the stable version.

Seeded: ADVERSARY_SEED (printed) makes a run reproducible; its database is off. bench/canary_adversary.py runs the
same machine longer."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import seed as use_seed
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from tests.canary_stand_ins import (
    CALLS,
    FAILING_MODES,
    MANUAL,
    MODES,
    NEW,
    OTHER,
    POD_EVENTS,
    FakeStack,
    Fault,
    Mode,
    PodEvent,
    PrometheusStandIn,
    Version,
    stack_settings,
    version_of,
)
from tools import canary as driver
from tools import canary_analysis
from tools.canary_analysis import Query

DEADLINE_SECONDS = 0.2
"""The Prometheus client's deadline per query here: a trickled answer outlasts it."""
WEIGHTS = (20, 50)
"""stack_settings' steps."""


def drive(stack: FakeStack, prometheus: PrometheusStandIn, *argv: str) -> tuple[int, str, str]:
    """Run the driver's `main` on `stack` judged by `prometheus` (a fault point in each of its queries and waits,
    a short deadline per query): its exit code, stdout and stderr."""

    def queries(url: str) -> Query:
        real = canary_analysis.prometheus_query(url)

        def query(expression: str) -> float | None:
            if stack.point("query") is not None:
                raise KeyboardInterrupt  # a kill while a check is asked: it was never judged
            return real(expression)

        return query

    out, err = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        patch.setattr(canary_analysis, "QUERY_TIMEOUT_SECONDS", DEADLINE_SECONDS)
        argv = ("--stack", "prod", "--prometheus", prometheus.url, *argv)
        code = driver.main(argv, lambda args: stack, query_factory=queries, sleep=stack.wait)
    return code, out.getvalue(), err.getvalue()


FAULTS = st.none() | st.builds(
    Fault,
    st.sampled_from(("up", "up", "up", *CALLS)),  # more of them at an `up`, where most goes on
    st.integers(0, 2),
    st.sampled_from(["kill before", "kill during", "fail", "concurrent"]),
)
KILLS = st.builds(
    Fault,
    st.sampled_from(("up", "up", "set_release", "write_stable", "sleep", "query")),
    st.integers(0, 1),
    st.sampled_from(["kill before", "kill during"]),
)
"""A kill at a point a release reaches (most runs do: two steps, two checks each), leaving its release state."""
SCRIPTS = st.lists(st.sampled_from(("healthy", "healthy", "healthy", *MODES)), min_size=1, max_size=4)
"""What Prometheus answers a run's first checks, in turn (healthy about half the time); the rest are healthy."""
POD_SCRIPTS = st.lists(st.sampled_from(("fine", "fine", "fine", *POD_EVENTS)), max_size=4)
"""What befalls the canary's pods before a run's first checks, in turn (nothing about half the time); then nothing."""


class ReleaseDriver(RuleBasedStateMachine):
    """Releases and aborts on one stack, each with a fault somewhere, checked against the model: the stable version
    (what was last promoted), the checks Prometheus served the release in progress, and releases condemned."""

    explored: ClassVar[Counter[str]] = Counter()
    """What every sequence so far did: runs by their ends, faults that struck, checks served by their mode."""

    def __init__(self) -> None:
        super().__init__()
        self.home = Path(tempfile.mkdtemp(prefix="canary-model-"))
        self.prometheus = PrometheusStandIn(observe=lambda: self.stack.cluster, observe_pods=self._pods_condition)
        self._serving = self.prometheus.running()
        self._serving.__enter__()
        self.stack = FakeStack(stack_settings(), home=self.home)
        self.stable: Version = version_of(self.stack.config["image"], self.stack.config["appConfig"])
        self.allowed = 0
        self.attempt_from = 0
        self.condemned: set[Version] = set()
        self.transcript: list[str] = []
        self.broken = False

    @initialize(allowed=st.integers(0, 1))
    def deploy(self, allowed: int) -> None:
        """The stack at rest on its stable version, tolerating `allowed` failed checks."""
        self.allowed = allowed
        self.stack = FakeStack(stack_settings(maxFailedChecks=allowed), home=self.home)

    @rule(
        image=st.sampled_from([NEW, OTHER]),
        greeting=st.sampled_from([None, "Hi"]),
        fault=FAULTS,
        script=SCRIPTS,
        cancel_stale=st.booleans(),
        pods=POD_SCRIPTS,
    )
    def release(
        self,
        image: str,
        greeting: str | None,
        fault: Fault | None,
        script: list[Mode],
        cancel_stale: bool,
        *,
        pods: list[PodEvent],
    ) -> None:
        """Release `image` (with GREETING changed, or not) through the canary, its pods befallen by `pods`."""
        config = dict(self.stable[1]) | ({} if greeting is None else {"GREETING": greeting})
        release = (image, tuple(sorted(config.items())))
        argv = ["--image", image, *(["--config", f"GREETING={greeting}"] if greeting else [])]
        code, out, err = self._run(fault, script, cancel_stale, *argv, pods=pods)
        if "rolling back: " in out and code == 130:
            self.condemned.add(release)
        if code == 0 and "promoted" in out:
            self._check_promotion(release)
            self.stable = release
        elif code == 0:
            self._require("nothing to release" in out, f"exit 0 without a promotion: {out}")
            self._require(release == self.stable, f"{release} is not what runs: {self.stable}\n{out}")
        self._check_end(code, out, err)

    @rule(fault=FAULTS, cancel_stale=st.booleans())
    def abort(self, fault: Fault | None, cancel_stale: bool) -> None:
        """`--abort`: whatever was in progress, the stable version."""
        code, out, err = self._run(fault, ["healthy"], cancel_stale, "--abort")
        if code == 0:
            self._agree(f"--abort ended ({out.strip()})")
        self._check_end(code, out, err)

    @rule(
        image=st.sampled_from([NEW, OTHER]),
        kill=KILLS,
        script=SCRIPTS,
        by_hand=st.sampled_from([MANUAL, "stable"]),
        greeting=st.sampled_from([None, "Hey"]),
        pods=POD_SCRIPTS,
    )
    def release_killed_then_deployed_by_hand(
        self, image: str, kill: Fault, script: list[Mode], by_hand: str, greeting: str | None, *, pods: list[PodEvent]
    ) -> None:
        """A release killed somewhere (its release state left, as a cancelled job leaves it); then an operator,
        without the driver, takes the canary out and deploys `by_hand` (4.0.0, or the stable version's image),
        with GREETING changed or not, as tools.promote and `pulumi up` would."""
        self.release(image, None, kill, script, True, pods=pods)
        self._deploy_by_hand(by_hand, greeting)

    @rule(by_hand=st.sampled_from([MANUAL, "stable"]), greeting=st.sampled_from([None, "Hey"]))
    def deploy_by_hand(self, by_hand: str, greeting: str | None) -> None:
        """An operator deploys `by_hand` without the driver, whatever the runs before left."""
        self._deploy_by_hand(by_hand, greeting)

    def _deploy_by_hand(self, by_hand: str, greeting: str | None) -> None:
        """`by_hand` deployed without the driver runs everywhere, and is the stable version from now on."""
        config = dict(self.stable[1]) | ({} if greeting is None else {"GREETING": greeting})
        version = (self.stable[0] if by_hand == "stable" else by_hand, tuple(sorted(config.items())))
        left = [path.name for path in self.home.glob("*.json")]
        self.stack.deploy_by_hand(version[0], config)
        self.transcript.append(f"$ deployed {version} by hand (release state left: {left})")
        ReleaseDriver.explored[f"deployed by hand{' over a release state' if left else ''}"] += 1
        problems = self.stack.disagreement(version)
        self._require(not problems, f"deployed {version} by hand, but: {problems}")
        if version != self.stable:  # a release state left names neither it nor its release: nothing in progress
            self.stable = version
            self.attempt_from = len(self.prometheus.served)
            self.condemned.clear()

    def teardown(self) -> None:
        """An abort without faults ends at the stable version, whatever the runs before left."""
        try:
            if not self.broken:
                code, out, err = self._run(None, ["healthy"], True, "--abort")
                self._require(code == 0, f"a fault-free --abort failed: {out}{err}")
                self._agree(f"a fault-free --abort ended ({out.strip()})")
        finally:
            ReleaseDriver.explored.update(f"check served {s.mode}" for s in self.prometheus.served)
            ReleaseDriver.explored.update(f"check's pods {s.pods}" for s in self.prometheus.served)
            self._serving.__exit__(None, None, None)
            shutil.rmtree(self.home, ignore_errors=True)

    # The run and its judges.

    def _run(
        self, fault: Fault | None, script: list[Mode], cancel_stale: bool, *argv: str, pods: Sequence[PodEvent] = ()
    ) -> tuple[int, str, str]:
        self.stack.calls.clear()
        self.stack.pod_script = list(pods)
        self.stack.fault = fault
        self.stack.during = self._second_run
        self.prometheus.answer_with(script)
        flags = ["--cancel-stale-update"] if cancel_stale else []
        code, out, err = drive(self.stack, self.prometheus, *argv, *flags)
        self.stack.fault = None
        ReleaseDriver.explored[f"{argv[0]} -> exit {code}"] += 1
        ReleaseDriver.explored.update(f"fault {fault.kind} at {fault.call}" for fault in self.stack.fired)
        self.stack.fired.clear()
        self.stack.pod_script = []
        self.transcript.append(
            f"$ canary {' '.join(argv + tuple(flags))} [{fault}, {script}, pods {pods}] -> {code}\n{out}{err}"
        )
        return code, out, err

    def _require(self, holds: bool, problem: str) -> None:
        """Fail the sequence naming the broken promise (and skip teardown's check, which would only repeat it)."""
        if not holds:
            self.broken = True
            raise AssertionError(problem)

    def _pods_condition(self) -> tuple[bool, PodEvent]:
        """What a check Prometheus serves sees of the canary's pods (the stack is replaced by `deploy`)."""
        return self.stack.pods_condition()

    def _second_run(self) -> None:
        """A run on the same stack started while this one runs: refused, nothing changed."""
        self.stack.fault = None
        before = self.stack.snapshot()
        code, out, err = drive(self.stack, self.prometheus, "--image", OTHER, "--cancel-stale-update")
        self._require(
            code != 0 and "another run" in err, f"a second run on the stack was not refused: {code}\n{out}{err}"
        )
        self._require(self.stack.snapshot() == before, "a refused second run changed the stack")

    def _agree(self, what: str) -> None:
        problems = self.stack.disagreement(self.stable)
        self._require(not problems, f"{what}, but not everything runs the stable version {self.stable}: {problems}")

    def _check_end(self, code: int, out: str, err: str) -> None:
        """After a run that ended (not killed): if it says a canary was rolled back, all is at the stable version;
        once nothing of a release is left anywhere, its attempt is over."""
        if "was rolled back" in out + err:
            self._agree(f"the run said the canary was rolled back (exit {code})")
        if code != 130 and not self.stack.disagreement(self.stable):
            self.attempt_from = len(self.prometheus.served)
            self.condemned.clear()

    def _check_promotion(self, release: Version) -> None:
        served = [s for s in self.prometheus.served[self.attempt_from :] if s.canary == release and s.answered == 3]
        for weight in WEIGHTS:
            healthy = any(
                s.mode == "healthy" and s.weight == weight and s.pods == "fine" and not s.restarted for s in served
            )
            self._require(
                healthy,
                f"promoted without a check at {weight} % that saw every objective met, every canary pod Ready and "
                f"none restarted in the step: {served}",
            )
        # A restart the Kubernetes API's error hid from a check is seen by the step's next one.
        failed = sum(s.mode in FAILING_MODES or (s.restarted and s.pods != "error") for s in served)
        self._require(failed <= self.allowed, f"promoted after {failed} failed checks, maxFailedChecks {self.allowed}")
        self._require(release not in self.condemned, "promoted a release whose rollback had begun")
        problems = self.stack.disagreement(release)
        self._require(not problems, f"promoted {release}, but: {problems}")


def _seed() -> int:
    return int(os.environ.get("ADVERSARY_SEED", "20260101"))


def check_the_release_driver(examples: int, steps: int, report: Callable[[str], None] = print) -> None:
    """Run the model for `examples` sequences of up to `steps` runs each, seeded by ADVERSARY_SEED (printed)."""
    seed = _seed()
    report(f"release driver adversary: ADVERSARY_SEED={seed} examples={examples} steps={steps}")
    ReleaseDriver.explored.clear()
    run_state_machine_as_test(
        use_seed(seed)(ReleaseDriver),
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_no_sequence_of_releases_aborts_and_faults_breaks_the_drivers_promises() -> None:
    check_the_release_driver(examples=int(os.environ.get("ADVERSARY_EXAMPLES", "40")), steps=6)
    explored = ReleaseDriver.explored
    print(
        f"explored: {sum(n for what, n in explored.items() if ' -> exit ' in what)} runs, "
        f"{sum(n for what, n in explored.items() if what.startswith('fault '))} faults struck"
    )

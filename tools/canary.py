"""Release a new version to a stack through a canary, judged by Prometheus, promoted or rolled back by itself.

    python -m tools.canary --stack prod --image ghcr.io/org/webapp:1.5.0@sha256:<digest> \\
        --prometheus http://prometheus.monitoring:9090 [--config GREETING=Hi] [--unset-config KEY]
    python -m tools.canary --stack prod --abort            # roll back a release left in progress

Every step is a `pulumi up` through the Automation API (tools/canary_automation.py): the release (the stack's
`canaryRelease`: image, its appConfig, the step's weight) runs beside the stable version, then the analysis checks
it against the stack's objectives every `canary.analysis.intervalSeconds` for the step's `seconds`
(tools/canary_analysis.py), with its pods as the Kubernetes API shows them: a restart since the step began fails a
check, a pod not Ready leaves it inconclusive; a step needs a check that passed. After the last step it is promoted:
`image` and `appConfig` become the release's and one `up` without `canaryRelease` rolls the stable pods and takes
the canary out, so the state matches the stack file. A failed check beyond `maxFailedChecks` (over the whole
release), a step in which no check passed, or a failed `up` (the promotion's included) rolls it back: the stack file
back to the version stable before the release and one `up` (the route's weight back to the stable Service first,
then the canary's objects deleted), and exit 1 naming the objective and the values seen.

Before each change the driver records what it is doing (tools/canary_state.py: the release, the version stable
before it, releasing, promoting or rolling back, the step, the failed checks), so a run killed anywhere (Ctrl-C, a
killed job) is finished by the next run asked for the same release, rolled back first by one asked for another,
and rolled back to the stable version by `--abort`. One run at a time per stack (tools/canary_lock.py). Needs the
`pulumi` CLI on PATH, logged in to the stacks' backend, and is run from the project's directory (or `--work-dir`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from tools.canary_analysis import Objectives, Query, check_canary, prometheus_query, with_pods
from tools.canary_lock import StackBusy, holding
from tools.canary_state import Release, ReleaseState, StateFile, Version
from tools.canary_target import PodState, PodsUnavailable, Target, UpFailed
from tools.promote import Image, PromotionError
from webapp_platform.components.alert_rules import Scope
from webapp_platform.components.canary import canary_labels, canary_name, effective_weight
from webapp_platform.components.labels import selector_labels, selector_of
from webapp_platform.config.app_config import PROJECT
from webapp_platform.config.app_metrics import BUNDLED, MetricNames
from webapp_platform.config.canary import MAX_WEIGHT, CanaryAnalysis, CanaryRelease
from webapp_platform.config.errors import ConfigError
from webapp_platform.config.settings import StackSettings

__all__ = ["Canary", "CanaryFailed", "Release", "RollbackUnfinished", "Target", "UpFailed", "main", "release_of"]


class CanaryFailed(Exception):
    """The release was rolled back; the message names what failed and the values seen."""


class RollbackUnfinished(Exception):
    """A rollback's own `up` failed: the stack is left part-way, and the release state says so to the next run."""


Log = Callable[[str], None]


def canary_pod_selector(settings: StackSettings, stack: str) -> dict[str, str]:
    """The labels that select the canary's pods on `stack` (its short name): the stable service's selector
    labels (the program's WebApp is named PROJECT, its instance `<PROJECT>-<stack>`) made the canary's, as
    webapp_platform/components/canary.py makes them (`track: canary`; through a route, its own instance)."""
    stable = selector_labels(PROJECT, f"{PROJECT}-{stack}")
    return selector_of(canary_labels(stable, by_route=settings.canary_weighted_by_route))


@dataclass
class Canary:
    """One canary run on `target`: steps, analysis, and its end (promotion or rollback), each change preceded by
    the release state it leads to in `state_file`, so a run killed anywhere is finished or undone by the next."""

    target: Target
    query: Query
    namespace: str
    state_file: StateFile
    log: Log = print
    sleep: Callable[[float], None] = time.sleep
    pod_selector: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"track": "canary"})
    """The canary's pods' labels (`canary_pod_selector`)."""

    def interrupted(self, settings: StackSettings) -> ReleaseState | None:
        """The release a run left in progress: its release state, unless the stack shows that state outdated
        (then discarded, saying so: see `_changed_since`); else (a state file lost with a checkout) the stack file's
        `canaryRelease` (written before the first `up`) or the deployed `canary` output, as releasing at the step
        of its weight; None when nothing is."""
        saved = self.state_file.load()
        if saved is not None and not self._changed_since(saved, settings):
            return saved
        written = settings.canary_release
        deployed = self.target.deployed_canary()
        if saved is not None:
            if deployed is not None:
                return saved
            self._discard(saved, settings)
            return None
        if written is not None:
            release, weight = Release.from_setting(written), written.weight
        elif deployed is not None:
            release, weight = Release.from_output(deployed), int(deployed["weight"])
        else:
            return None
        weights = [step.weight for step in settings.canary.steps]
        return ReleaseState(release, Version.of(settings), step=weights.index(weight) if weight in weights else 0)

    @staticmethod
    def _changed_since(saved: ReleaseState, settings: StackSettings) -> bool:
        """Whether the stack file moved on from `saved`: no `canaryRelease`, and a stable version that is neither
        the release (a promotion's config write landed) nor the version stable before it (a rollback's landed, or
        the first step's never did). The driver's own writes never leave it so (tools/canary_automation.py writes
        the values first and removes `canaryRelease` last), so the stack was deployed since without the driver;
        with no `canary` deployed either, nothing is in progress and `saved` is outdated."""
        if settings.canary_release is not None:
            return False
        return Version.of(settings) not in (saved.stable, saved.release.version)

    def _discard(self, saved: ReleaseState, settings: StackSettings) -> None:
        """Remove an outdated release state, deploying nothing, and say so: acting on it would write its stable
        version back and undo the deploy made since."""
        self.state_file.clear()
        self.log(
            f"{self.state_file.path}: discarded the release state a killed run left ({saved.release.image.reference} "
            f"over {saved.stable.reference}, {saved.phase}): the stack runs {Version.of(settings).reference}, "
            "neither that release nor the version stable before it, with no canaryRelease in its stack file and no "
            "canary deployed, so it was deployed since without this driver; nothing is in progress, so nothing was "
            "taken out or deployed"
        )

    def run(self, release: Release, settings: StackSettings, left: ReleaseState | None) -> None:
        """Take `release` through every step and promote it, finishing `left` (what a run left in progress) when
        it is the same release, rolling it back first when not; raise CanaryFailed after rolling back."""
        state = self._begin(release, settings, left)
        if state.phase == "rolling back":
            self._roll_back(state, f"an interrupted run was rolling it back: {state.reason}")
        if state.phase == "releasing":
            state = self._steps(state, settings)
        self._promote(state)

    def abort(self, settings: StackSettings) -> Version | None:
        """Take out whatever canary runs, back to the version stable before it (which it returns); None when no
        release is in progress."""
        left = self.interrupted(settings)
        if left is None:
            return None
        self._take_out(left.to("rolling back", reason=left.reason or "aborted"))
        return left.stable

    def _begin(self, release: Release, settings: StackSettings, left: ReleaseState | None) -> ReleaseState:
        if left is not None and left.release == release:
            what = {"releasing": f"at step {left.step + 1}", "promoting": "at its promotion"}.get(left.phase, "")
            self.log(
                f"resuming the interrupted canary of {release.image.reference} {what or 'rolling it back'} "
                f"({len(left.failed_checks)} failed check(s) so far)"
            )
            return left
        if left is not None:
            self.log(f"rolling back the interrupted canary of {left.release.image.reference} before releasing another")
            self._take_out(left.to("rolling back", reason=left.reason or "another release was asked for"))
        return self.state_file.save(ReleaseState(release, Version.of(settings) if left is None else left.stable))

    def _steps(self, state: ReleaseState, settings: StackSettings) -> ReleaseState:
        canary = settings.canary
        steps = canary.steps
        objectives = Objectives.of(settings.metrics, canary.analysis)
        names = MetricNames(settings.app.metrics.prefix) if settings.app.metrics else BUNDLED
        scope = Scope(namespace=self.namespace, name=canary_name(settings.name), names=names)
        for index in range(state.step, len(steps)):
            step, number = steps[index], index + 1
            # A new step's pods are first seen after its update; a resumed step keeps what its first run saw.
            baseline = state.restart_baseline if index == state.step else None
            state = self.state_file.save(state.to("releasing", step=index, restart_baseline=baseline))
            share = effective_weight(settings.initial_replicas, step.weight, by_route=settings.canary_weighted_by_route)
            self.log(
                f"step {number}/{len(steps)}: {step.weight} % of the requests ({share:.0f} %) for {step.seconds} s"
            )
            self.target.set_release(state.release, step.weight)
            try:
                self.target.up()
            except UpFailed as error:
                self._roll_back(state, f"step {number}'s update failed: {str(error)[-1500:]}")
            state = self._first_seen(state, self._pods())
            state = self._analyse(
                state, number=number, seconds=step.seconds, scope=scope, objectives=objectives, analysis=canary.analysis
            )
        return state

    def _analyse(
        self,
        state: ReleaseState,
        *,
        number: int,
        seconds: int,
        scope: Scope,
        objectives: Objectives,
        analysis: CanaryAnalysis,
    ) -> ReleaseState:
        """The step's checks; the step needs one that passed (every objective measured and met), and the release
        no more failed checks, over all its runs, than maxFailedChecks."""
        interval, allowed = analysis.interval_seconds, analysis.max_failed_checks
        passed = 0
        for _ in range(max(1, seconds // interval)):
            self.sleep(interval)
            pods = self._pods()
            state = self._first_seen(state, pods)
            check = check_canary(self.query, scope, interval, objectives)
            check = with_pods(check, pods, state.restart_baseline or {})
            self.log(f"  check: {check.verdict}: {check.reason}")
            if check.verdict == "passed":
                passed += 1
            elif check.verdict == "failed":
                state = self.state_file.save(state.to("releasing", failed_checks=(*state.failed_checks, check.reason)))
                if len(state.failed_checks) > allowed:
                    self._roll_back(
                        state,
                        f"step {number}: {len(state.failed_checks)} failed check(s), more than maxFailedChecks "
                        f"{allowed}: " + " | ".join(state.failed_checks),
                    )
        if passed == 0:
            self._roll_back(state, f"step {number}: no check could judge the canary healthy (the last: {check.reason})")
        return state

    def _pods(self) -> Sequence[PodState] | str:
        """The canary's pods, or why the Kubernetes API could not say."""
        try:
            return self.target.canary_pods(self.namespace, self.pod_selector)
        except PodsUnavailable as error:
            return str(error)

    def _first_seen(self, state: ReleaseState, pods: Sequence[PodState] | str) -> ReleaseState:
        """`state` with the step's pods' restarts as their baseline (saved, so a resumed run keeps it), unless it
        has one or the pods could not be read."""
        if state.restart_baseline is not None or isinstance(pods, str):
            return state
        return self.state_file.save(state.to("releasing", restart_baseline={pod.name: pod.restarts for pod in pods}))

    def _promote(self, state: ReleaseState) -> None:
        state = self.state_file.save(state.to("promoting"))
        self.log(f"promoting {state.release.image.reference}: the stable version becomes it, the canary is taken out")
        self.target.write_stable(state.release.version)
        try:
            self.target.up()
        except UpFailed as error:
            self._roll_back(state, f"the promotion's update failed: {str(error)[-1500:]}")
        self.state_file.clear()

    def _roll_back(self, state: ReleaseState, reason: str) -> NoReturn:
        self.log(f"rolling back: {reason}")
        self._take_out(state.to("rolling back", reason=reason))
        raise CanaryFailed(reason)

    def _take_out(self, state: ReleaseState) -> None:
        """The stable version back in the stack file and one `up`: the route to the stable Service, the canary's
        objects deleted; the release state says `rolling back` until that `up` has finished."""
        self.state_file.save(state)
        self.target.write_stable(state.stable)
        try:
            self.target.up()
        except UpFailed as error:
            raise RollbackUnfinished(
                f"rolling back {state.release.image.reference} ({state.reason}) did not finish: its update failed "
                f"({str(error)[-1500:]}); the stack is left part-way: run with --abort to finish it"
            ) from error
        self.state_file.clear()


def _config_changes(pairs: Sequence[str], where: str) -> dict[str, str]:
    changes = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise PromotionError(f"{where} {pair!r} is not KEY=VALUE")
        changes[name] = value
    return changes


def release_of(stable: Version, image: Image, set_config: Mapping[str, str], unset: Sequence[str]) -> Release:
    """The release: `image`, and the stable version's appConfig with `set_config` applied and `unset` removed."""
    missing = sorted(set(unset) - set(stable.app_config))
    if missing:
        raise PromotionError(f"--unset-config {missing}: not in the stack's appConfig {sorted(stable.app_config)}")
    config = {key: value for key, value in stable.app_config.items() if key not in unset}
    release = Release(image, {**config, **set_config})
    try:  # refused here, before any update, as the program would refuse it
        CanaryRelease.model_validate(release.setting(MAX_WEIGHT))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in error.errors(include_url=False)
        )
        raise PromotionError(f"the release is refused: {problems}") from error
    return release


def main(
    argv: Sequence[str] | None = None,
    target_factory: Callable[[argparse.Namespace], Target] | None = None,
    *,
    query_factory: Callable[[str], Query] = prometheus_query,
    sleep: Callable[[float], None] = time.sleep,
    log: Log = print,
) -> int:
    """Parse the command line and run the canary (or the abort); 0 promoted or aborted, 1 rolled back or refused.
    The factories, `sleep` and `log` are the world it acts on: the stack, Prometheus, the wait between checks."""
    parser = argparse.ArgumentParser(prog="python -m tools.canary", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the stack (org/project/stack or its name)")
    parser.add_argument("--image", help="the release: repository:tag@sha256:...")
    parser.add_argument("--abort", action="store_true", help="roll back a canary left in progress, and stop")
    parser.add_argument(
        "--prometheus", default=os.environ.get("PROMETHEUS_URL", ""), help="Prometheus' URL ($PROMETHEUS_URL)"
    )
    parser.add_argument(
        "--config", action="append", default=[], metavar="KEY=VALUE", help="the release's appConfig change"
    )
    parser.add_argument(
        "--unset-config", action="append", default=[], metavar="KEY", help="an appConfig key the release drops"
    )
    parser.add_argument("--work-dir", type=Path, default=Path.cwd(), help="the project's directory")
    parser.add_argument(
        "--cancel-stale-update",
        action="store_true",
        help="first cancel an update a killed run left holding the lock (only where nothing else can be updating "
        "the stack, as in the deploy workflow's one-at-a-time concurrency group)",
    )
    parser.add_argument("--policy-pack", action="append", default=[])
    parser.add_argument("--policy-pack-config", action="append", default=[])
    args = parser.parse_args(argv)
    if not args.abort and (not args.image or not args.prometheus):
        parser.error("--image and --prometheus (or PROMETHEUS_URL) are required unless --abort")
    factory = target_factory or _automation_target
    short_name = args.stack.rsplit("/", 1)[-1]
    try:
        target = factory(args)
        with holding(target.state_dir / f"{short_name}.lock", args.stack):
            query = query_factory(args.prometheus) if args.prometheus else _no_query
            return _release_or_abort(args, target, query, sleep, log)
    except KeyboardInterrupt:
        print(
            f"{args.stack}: interrupted; the stack may be left in a canary state: run this again with the same "
            "release to finish it, or with --abort to roll it back",
            file=sys.stderr,
        )
        return 130
    except CanaryFailed as failure:
        print(f"{args.stack}: the canary of {args.image} was rolled back: {failure}", file=sys.stderr)
        return 1
    except (PromotionError, ConfigError, UpFailed, RollbackUnfinished, StackBusy) as error:
        print(f"{args.stack}: {error}", file=sys.stderr)
        return 1


def _automation_target(args: argparse.Namespace) -> Target:
    from tools.canary_automation import AutomationTarget

    return AutomationTarget(args.stack, args.work_dir.resolve(), args.policy_pack, args.policy_pack_config)


def _release_or_abort(
    args: argparse.Namespace, target: Target, query: Query, sleep: Callable[[float], None], log: Log
) -> int:
    """The run itself, holding the stack's lock."""
    short_name = args.stack.rsplit("/", 1)[-1]
    for line in target.recover(cancel_stale=args.cancel_stale_update):
        print(line)
    settings = target.settings()
    state_file = StateFile(target.state_dir / f"{short_name}.json")
    canary = Canary(
        target,
        query,
        settings.namespace_name(short_name),
        state_file,
        log,
        sleep,
        canary_pod_selector(settings, short_name),
    )
    if args.abort:
        stable = canary.abort(settings)
        if stable is None:
            print(f"{args.stack}: no canary in progress")
        else:
            print(f"{args.stack}: the canary was rolled back; the stack runs {stable.reference}")
        return 0
    if not settings.canary.enabled:
        raise PromotionError(f"{args.stack}: canary.enabled is not set; deploy it with `pulumi up` instead")
    left = canary.interrupted(settings)
    stable = Version.of(settings) if left is None else left.stable
    image = Image.parse(args.image, "--image")
    release = release_of(stable, image, _config_changes(args.config, "--config"), args.unset_config)
    if left is None and release.version == stable:
        print(f"{args.stack} already runs {release.image.reference}; nothing to release")
        return 0
    canary.run(release, settings, left)
    print(f"{args.stack}: {release.image.reference} promoted")
    return 0


def _no_query(expression: str) -> float | None:
    raise AssertionError("an abort queries nothing")


if __name__ == "__main__":
    sys.exit(main())

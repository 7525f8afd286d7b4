"""Release a new version to a stack through a canary, judged by Prometheus, promoted or rolled back by itself.

    python -m tools.canary --stack prod --image ghcr.io/org/webapp:1.5.0@sha256:<digest> \\
        --prometheus http://prometheus.monitoring:9090 [--config GREETING=Hi] [--unset-config KEY]
    python -m tools.canary --stack prod --abort            # roll back a release left in progress

Every step is a `pulumi up` through the Automation API: the release (the stack's `canaryRelease`: image, its
appConfig, the step's weight) runs beside the stable version, then the analysis checks it against the stack's
objectives every `canary.analysis.intervalSeconds` for the step's `seconds` (tools/canary_analysis.py). After the
last step it is promoted: `image` and `appConfig` become the release's and one `up` without `canaryRelease`
rolls the stable pods and takes the canary out, so the state matches the stack file. A failed check beyond
`maxFailedChecks`, a step that judged nothing, or a failed `up` rolls it back: one `up` without `canaryRelease`
(the route's weight back to the stable Service first, then the canary's objects deleted), the stack file back to
the stable version, and exit 1 naming the objective and the values seen.

A run that was interrupted (Ctrl-C, a killed job) leaves the stack in a canary state, which its `canary` output
records; the next run finishes it when asked for the same release (from the step it was at), rolls it back first
when asked for another, and `--abort` rolls it back. Needs the `pulumi` CLI on PATH, logged in to the stacks'
backend, and is run from the project's directory (or `--work-dir`).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from tools.canary_analysis import Check, Objectives, Query, check_canary, prometheus_query
from tools.promote import Image, PromotionError
from webapp_platform.components.alert_rules import Scope
from webapp_platform.components.canary import canary_name, effective_weight
from webapp_platform.config.app_config import PROJECT
from webapp_platform.config.app_metrics import BUNDLED, MetricNames
from webapp_platform.config.canary import MAX_WEIGHT, CanaryAnalysis, CanaryRelease
from webapp_platform.config.errors import ConfigError
from webapp_platform.config.loading import parse_settings_only
from webapp_platform.config.settings import StackSettings

RELEASE_KEY = f"{PROJECT}:canaryRelease"


class CanaryFailed(Exception):
    """The release was rolled back; the message names what failed and the values seen."""


class UpFailed(Exception):
    """A `pulumi up` failed; the message is the engine's."""


@dataclass(frozen=True)
class Release:
    """What a canary releases: an image pinned by digest and the app's whole plain config."""

    image: Image
    app_config: Mapping[str, str]

    def setting(self, weight: int) -> dict[str, Any]:
        """The stack's `canaryRelease` value for this release at `weight`."""
        image = {"repository": self.image.repository, "tag": self.image.tag, "digest": self.image.digest}
        return {"image": image, "appConfig": dict(self.app_config), "weight": weight}

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> Release:
        """The release a stack's `canary` output describes (a run in progress)."""
        return cls(Image.parse(str(output["image"]), "the stack's canary output"), dict(output["appConfig"]))


class Target(Protocol):
    """The stack a canary runs on: its settings, its deployed state, and `pulumi up`."""

    def settings(self) -> StackSettings:
        """The stack's settings as its stack file holds them now."""

    def in_progress(self) -> Mapping[str, Any] | None:
        """The deployed stack's `canary` output: a release left in progress, or None."""

    def set_release(self, release: Release, weight: int) -> None:
        """Write `canaryRelease` for `release` at `weight` into the stack's config."""

    def clear_release(self) -> None:
        """Remove `canaryRelease` from the stack's config."""

    def adopt(self, release: Release) -> None:
        """Make `release` the stable version in the stack's config: its image and its appConfig."""

    def up(self) -> None:
        """`pulumi up`; raise UpFailed with the engine's message."""

    def recover(self, *, cancel_stale: bool) -> list[str]:
        """Undo what a killed run left behind: its update's lock (when `cancel_stale`), then its pending operations
        (by a refresh that clears them); say what was done."""


Log = Callable[[str], None]


@dataclass
class Canary:
    """One canary run on `target`: steps, analysis, and its end (promotion or rollback)."""

    target: Target
    query: Query
    namespace: str
    log: Log = print
    sleep: Callable[[float], None] = time.sleep
    failed_checks: list[Check] = field(default_factory=list)

    def run(self, release: Release, stable: StackSettings) -> None:
        """Take `release` through every step and promote it; raise CanaryFailed after rolling it back."""
        canary = stable.canary
        steps = canary.steps
        first = self._resume_from(release, stable)
        objectives = Objectives.of(stable.metrics, canary.analysis)
        names = MetricNames(stable.app.metrics.prefix) if stable.app.metrics else BUNDLED
        scope = Scope(namespace=self.namespace, name=canary_name(stable.name), names=names)
        for number, step in enumerate(steps[first:], start=first + 1):
            share = effective_weight(stable.initial_replicas, step.weight, by_route=stable.canary_weighted_by_route)
            self.log(
                f"step {number}/{len(steps)}: {step.weight} % of the requests ({share:.0f} %) for {step.seconds} s"
            )
            self.target.set_release(release, step.weight)
            try:
                self.target.up()
            except UpFailed as error:
                self._roll_back(f"step {number}'s update failed: {str(error)[-1500:]}")
            self._analyse(number, step.seconds, scope, objectives, canary.analysis)
        self.log(f"promoting {release.image.reference}: the stable version becomes it, the canary is taken out")
        self.target.adopt(release)
        self.target.clear_release()
        self.target.up()

    def _resume_from(self, release: Release, stable: StackSettings) -> int:
        """The step to start at: where an interrupted run of the same release stood, else the first (after rolling
        back an interrupted run of another release)."""
        left = self.target.in_progress()
        if left is None:
            return 0
        previous = Release.from_output(left)
        if previous == release:
            weights = [step.weight for step in stable.canary.steps]
            weight = int(left["weight"])
            at = weights.index(weight) if weight in weights else 0
            self.log(f"resuming the interrupted canary of {release.image.reference} at step {at + 1} ({weight} %)")
            return at
        self.log(f"rolling back the interrupted canary of {previous.image.reference} before releasing another")
        self.abort()
        return 0

    def abort(self) -> None:
        """Take out whatever canary runs: the stack back to its stable version."""
        self.target.clear_release()
        self.target.up()

    def _analyse(
        self, number: int, seconds: int, scope: Scope, objectives: Objectives, analysis: CanaryAnalysis
    ) -> None:
        interval, allowed = analysis.interval_seconds, analysis.max_failed_checks
        judged = 0
        for _ in range(max(1, seconds // interval)):
            self.sleep(interval)
            check = check_canary(self.query, scope, interval, objectives)
            self.log(f"  check: {check.verdict}: {check.reason}")
            if check.verdict == "inconclusive":
                continue
            judged += 1
            if check.verdict == "failed":
                self.failed_checks.append(check)
                if len(self.failed_checks) > allowed:
                    self._roll_back(
                        f"step {number}: {len(self.failed_checks)} failed check(s), more than maxFailedChecks "
                        f"{allowed}: " + " | ".join(c.reason for c in self.failed_checks)
                    )
        if judged == 0:
            self._roll_back(f"step {number}: no check could judge the canary (the last: {check.reason})")

    def _roll_back(self, reason: str) -> None:
        self.log(f"rolling back: {reason}")
        self.abort()
        raise CanaryFailed(reason)


class AutomationTarget:
    """A stack through Pulumi's Automation API: the project's program run in this process, as `pulumi up` would."""

    def __init__(
        self, stack_name: str, work_dir: Path, policy_packs: Sequence[str], policy_pack_configs: Sequence[str]
    ) -> None:
        from pulumi import automation as auto

        self._auto = auto
        self.work_dir = work_dir
        self.policy_packs = [str(work_dir / pack) for pack in policy_packs]
        self.policy_pack_configs = [str(work_dir / config) for config in policy_pack_configs]
        project = yaml.safe_load((work_dir / "Pulumi.yaml").read_text())["name"]
        self.stack = auto.select_stack(
            stack_name,
            project_name=project,
            program=self._program,
            opts=auto.LocalWorkspaceOptions(work_dir=str(work_dir)),
        )
        self.short_name = stack_name.rsplit("/", 1)[-1]

    def _program(self) -> None:
        sys.path.insert(0, str(self.work_dir))
        runpy.run_path(str(self.work_dir / "__main__.py"), run_name="__main__")

    def settings(self) -> StackSettings:
        raw = {
            key.split(":", 1)[1]: value.value
            for key, value in self.stack.get_all_config().items()
            if key.startswith(f"{PROJECT}:")
        }
        return parse_settings_only(raw)

    def in_progress(self) -> Mapping[str, Any] | None:
        output = self.stack.outputs().get("canary")
        return dict(output.value) if output is not None and output.value else None

    def set_release(self, release: Release, weight: int) -> None:
        self.stack.set_config(RELEASE_KEY, self._auto.ConfigValue(json.dumps(release.setting(weight))))

    def clear_release(self) -> None:
        if RELEASE_KEY in self.stack.get_all_config():
            self.stack.remove_config(RELEASE_KEY)

    def adopt(self, release: Release) -> None:
        image = release.image
        values = {f"{PROJECT}:image.{name}": getattr(image, name) for name in ("repository", "tag", "digest")}
        # Key by key, so the stack file keeps its appConfig a map (and its comments).
        values |= {f"{PROJECT}:appConfig.{name}": value for name, value in release.app_config.items()}
        for name in set(self.settings().app_config) - set(release.app_config):
            self.stack.remove_config(f"{PROJECT}:appConfig.{name}", path=True)
        self.stack.set_all_config({key: self._auto.ConfigValue(value) for key, value in values.items()}, path=True)

    def recover(self, *, cancel_stale: bool) -> list[str]:
        done = []
        if cancel_stale:
            self.stack.cancel()
            done.append("cancelled any update a killed run left holding the stack's lock")
        pending = (self.stack.export_stack().deployment or {}).get("pending_operations") or []
        if pending:
            try:
                self.stack.refresh(clear_pending_creates=True, on_output=print)
            except self._auto.errors.CommandError as error:
                raise UpFailed(str(error)) from error
            done.append(f"refreshed the state, clearing {len(pending)} operation(s) a killed run left pending")
        return done

    def up(self) -> None:
        try:
            self.stack.up(
                policy_packs=self.policy_packs or None,
                policy_pack_configs=self.policy_pack_configs or None,
                on_output=print,
                show_secrets=False,
            )
        except self._auto.errors.CommandError as error:
            raise UpFailed(str(error)) from error


def _config_changes(pairs: Sequence[str], where: str) -> dict[str, str]:
    changes = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise PromotionError(f"{where} {pair!r} is not KEY=VALUE")
        changes[name] = value
    return changes


def release_of(stable: StackSettings, image: Image, set_config: Mapping[str, str], unset: Sequence[str]) -> Release:
    """The release: `image`, and the stable appConfig with `set_config` applied and `unset` removed."""
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
    argv: Sequence[str] | None = None, target_factory: Callable[[argparse.Namespace], Target] | None = None
) -> int:
    """Parse the command line and run the canary (or the abort); 0 promoted or aborted, 1 rolled back or refused."""
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
    factory = target_factory or (
        lambda a: AutomationTarget(a.stack, a.work_dir.resolve(), a.policy_pack, a.policy_pack_config)
    )
    try:
        target = factory(args)
        for line in target.recover(cancel_stale=args.cancel_stale_update):
            print(line)
        stable = target.settings()
        namespace = stable.namespace_name(args.stack.rsplit("/", 1)[-1])
        canary = Canary(target, prometheus_query(args.prometheus) if args.prometheus else _no_query, namespace)
        if args.abort:
            if target.in_progress() is None:
                print(f"{args.stack}: no canary in progress")
                return 0
            canary.abort()
            print(f"{args.stack}: the canary was rolled back; the stack runs {stable.image.reference}")
            return 0
        if not stable.canary.enabled:
            raise PromotionError(f"{args.stack}: canary.enabled is not set; deploy it with `pulumi up` instead")
        release = release_of(
            stable,
            Image.parse(args.image, "--image"),
            _config_changes(args.config, "--config"),
            args.unset_config,
        )
        if _runs(stable, release) and target.in_progress() is None:
            print(f"{args.stack} already runs {release.image.reference}; nothing to release")
            return 0
        canary.run(release, stable)
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
    except (PromotionError, ConfigError, UpFailed) as error:
        print(f"{args.stack}: {error}", file=sys.stderr)
        return 1
    print(f"{args.stack}: {release.image.reference} promoted")
    return 0


def _runs(stable: StackSettings, release: Release) -> bool:
    """Whether the stack's stable version is `release` already."""
    image = stable.image
    same_image = (image.repository, image.tag, image.digest) == (
        release.image.repository,
        release.image.tag,
        release.image.digest,
    )
    return same_image and dict(stable.app_config) == dict(release.app_config)


def _no_query(expression: str) -> float | None:
    raise AssertionError("an abort queries nothing")


if __name__ == "__main__":
    sys.exit(main())

"""The canary driver's record of a release in progress, kept in a file beside the stack file and written before
every change it makes, so that whatever point a run is killed at, the next run (or `--abort`) knows what it was
doing: which release, which version was stable before it, the step it was at, the checks that failed so far, and
whether it was releasing, promoting or rolling back.

The stack file alone cannot say this: a promotion writes the release into it before its `up`, and a rollback
removes `canaryRelease` before its own; the Pulumi state's `canary` output is written only by an `up` that
finished. The file is written whole (a temporary file renamed over it), so a kill leaves the old record or the
new one, never half of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tools.promote import Image, PromotionError
from webapp_platform.config.canary import CanaryRelease
from webapp_platform.config.settings import StackSettings


@dataclass(frozen=True)
class Version:
    """What a stack file says runs: the image setting (repository, tag, and digest when pinned) and the app's
    whole plain appConfig."""

    repository: str
    tag: str
    digest: str | None
    app_config: Mapping[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """`repository:tag[@digest]`."""
        pinned = f"{self.repository}:{self.tag}"
        return f"{pinned}@{self.digest}" if self.digest else pinned

    @classmethod
    def of(cls, settings: StackSettings) -> Version:
        """The stable version a stack's settings name."""
        image = settings.image
        return cls(image.repository, image.tag, image.digest, dict(settings.app_config))


@dataclass(frozen=True)
class Release:
    """What a canary releases: an image pinned by digest and the app's whole plain config."""

    image: Image
    app_config: Mapping[str, str]

    def setting(self, weight: int) -> dict[str, Any]:
        """The stack's `canaryRelease` value for this release at `weight`."""
        image = {"repository": self.image.repository, "tag": self.image.tag, "digest": self.image.digest}
        return {"image": image, "appConfig": dict(self.app_config), "weight": weight}

    @property
    def version(self) -> Version:
        """The release as a stack file's stable version (what its promotion writes)."""
        image = self.image
        return Version(image.repository, image.tag, image.digest, dict(self.app_config))

    def record(self) -> dict[str, Any]:
        """The release as the `canary` output (and the release state) carry it."""
        return {"image": self.image.reference, "appConfig": dict(self.app_config)}

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> Release:
        """The release a stack's `canary` output (or the release state) describes."""
        return cls(Image.parse(str(output["image"]), "the stack's canary output"), dict(output["appConfig"]))

    @classmethod
    def from_setting(cls, setting: CanaryRelease) -> Release:
        """The release a stack file's `canaryRelease` names."""
        image = setting.image
        return cls(Image(image.repository, image.tag, image.digest or ""), dict(setting.app_config))


Phase = Literal["releasing", "promoting", "rolling back"]
"""What a run was doing: taking the release through its steps, making it the stable version, or taking it out."""


@dataclass(frozen=True)
class ReleaseState:
    """A release in progress: the release, the version stable before it, what the run was doing, the step it was
    at (from 0), the failed checks so far (their reasons: the maxFailedChecks budget spans resumed runs), why it is
    being rolled back, and the restarts of the step's canary pods when first seen, by pod (None: not seen yet; kept
    so a resumed run still sees a restart from before it)."""

    release: Release
    stable: Version
    phase: Phase = "releasing"
    step: int = 0
    failed_checks: tuple[str, ...] = ()
    reason: str = ""
    restart_baseline: Mapping[str, int] | None = None

    def to(self, phase: Phase, **changes: Any) -> ReleaseState:
        """This state in `phase`, with `changes`."""
        return replace(self, phase=phase, **changes)

    def to_json(self) -> dict[str, Any]:
        """The record the state file holds."""
        stable = asdict(self.stable)
        stable["app_config"] = dict(self.stable.app_config)
        return {
            "release": self.release.record(),
            "stable": stable,
            "phase": self.phase,
            "step": self.step,
            "failedChecks": list(self.failed_checks),
            "reason": self.reason,
            "restartBaseline": None if self.restart_baseline is None else dict(self.restart_baseline),
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ReleaseState:
        """The state a state file's record describes."""
        phase = record["phase"]
        if phase not in ("releasing", "promoting", "rolling back"):
            raise ValueError(f"phase {phase!r}")
        baseline = record.get("restartBaseline")  # absent in a state written before it was kept
        return cls(
            release=Release.from_output(record["release"]),
            stable=Version(**record["stable"]),
            phase=phase,
            step=int(record["step"]),
            failed_checks=tuple(str(reason) for reason in record["failedChecks"]),
            reason=str(record["reason"]),
            restart_baseline=None if baseline is None else {str(pod): int(n) for pod, n in dict(baseline).items()},
        )


@dataclass(frozen=True)
class StateFile:
    """Where a stack's release state lives (beside its stack file): read, written whole, removed when the release
    ends."""

    path: Path

    def load(self) -> ReleaseState | None:
        """The release in progress, or None when no run left one."""
        try:
            record = json.loads(self.path.read_text())
            return ReleaseState.from_json(record)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, PromotionError) as error:
            raise PromotionError(
                f"{self.path}: the canary's release state is unreadable ({error}); look at the stack, then remove "
                "the file and run --abort"
            ) from error

    def save(self, state: ReleaseState) -> ReleaseState:
        """Write `state` whole (a kill leaves the old record or this one); return it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.new")
        with temporary.open("w") as file:
            json.dump(state.to_json(), file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        return state

    def clear(self) -> None:
        """The release ended (promoted or rolled back): nothing is in progress."""
        self.path.unlink(missing_ok=True)

"""tools/promote.py against canned CLI answers: what it writes, and every refusal (the e2e runs it for real)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from tools.promote import PromotionError, main

DIGEST = "sha256:" + "d" * 64
BUILT = f"ghcr.io/example/webapp:sha-860c190@{DIGEST}"


class FakePulumi:
    """Answers `stack history` and `stack output` from canned values; records `config set`."""

    def __init__(self, history: list[dict[str, str]] | None = None, outputs: dict[str, str] | None = None) -> None:
        self.history = history if history is not None else [{"kind": "update", "result": "succeeded"}]
        self.outputs = outputs if outputs is not None else {"image": BUILT}
        self.config: list[tuple[str, str, str]] = []

    def __call__(self, args: Sequence[str]) -> str:
        if list(args[:2]) == ["stack", "history"]:
            return json.dumps(self.history)
        if list(args[:2]) == ["stack", "output"]:
            return json.dumps(self.outputs)
        if list(args[:2]) == ["config", "set"]:
            stack, key, value = args[args.index("--stack") + 1], args[-2], args[-1]
            self.config.append((stack, key, value))
            return ""
        raise PromotionError(f"unexpected pulumi {args}")


def _written(fake: FakePulumi) -> dict[str, str]:
    return {key: value for _, key, value in fake.config}


def test_the_build_goes_to_dev_by_digest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fake = FakePulumi()
    outputs = tmp_path / "github_output"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GITHUB_OUTPUT", str(outputs))
        assert main(["--image", BUILT, "--to", "dev"], pulumi=fake) == 0
    assert {stack for stack, _, _ in fake.config} == {"dev"}
    assert _written(fake) == {
        "webapp:image.repository": "ghcr.io/example/webapp",
        "webapp:image.tag": "sha-860c190",
        "webapp:image.digest": DIGEST,
    }
    assert f"dev now runs {BUILT} (from the build)" in capsys.readouterr().out
    assert outputs.read_text() == f"image={BUILT}\n"


def test_the_next_stage_gets_what_the_previous_one_runs() -> None:
    fake = FakePulumi()
    assert main(["--from", "staging", "--to", "prod"], pulumi=fake) == 0
    assert {stack for stack, _, _ in fake.config} == {"prod"}
    assert _written(fake)["webapp:image.digest"] == DIGEST


@pytest.mark.parametrize(
    ("fake", "args", "refusal"),
    [
        (FakePulumi(history=[]), ["--from", "dev"], "stack dev has never been deployed"),
        (
            FakePulumi(history=[{"kind": "update", "result": "failed"}]),
            ["--from", "dev"],
            "stack dev's latest operation is 'update' with result 'failed'",
        ),
        (
            FakePulumi(history=[{"kind": "destroy", "result": "succeeded"}]),
            ["--from", "dev"],
            "latest operation is 'destroy'",
        ),
        (FakePulumi(outputs={}), ["--from", "dev"], "stack dev exports no `image` output"),
        (
            FakePulumi(outputs={"image": "ghcr.io/example/webapp:1.4.2"}),
            ["--from", "dev"],
            "not an image pinned by digest",
        ),
        (FakePulumi(), ["--image", "ghcr.io/example/webapp:latest@" + DIGEST], "'latest' cannot be tracked"),
        (FakePulumi(), ["--image", "ghcr.io/example/webapp:1.4.2@sha256:abc"], "is not a digest of the form"),
        (FakePulumi(), ["--from", "staging"], "--from and --to are both staging"),
    ],
)
def test_refusals_name_the_reason_and_write_nothing(
    fake: FakePulumi, args: list[str], refusal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--to", "staging"], pulumi=fake) == 1
    assert refusal in capsys.readouterr().err
    assert fake.config == []

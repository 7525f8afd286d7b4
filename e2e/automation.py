"""Run one Pulumi operation through the Automation API, the way pulumi/actions drives the CLI.

    python -m e2e.automation WORKDIR STACK preview --policy-pack policy --refresh --diff
    python -m e2e.automation WORKDIR STACK up --policy-pack policy

The workflows' `pulumi/actions` steps are Pulumi's Automation API (Node.js)
calling the CLI; this is the same API in Python, with the program run
in-process (an inline program that executes the project's `__main__.py`).
The e2e uses it for everything with a policy pack: the CLI then starts the
pack in its own virtualenv through `pulumi-analyzer-policy-python`, because
no separate Python language host is involved (docs/testing.md, "The real engine", says why
the built host cannot run Python policy packs). Backend, passphrase and
PULUMI_HOME come from the environment `Workspace` sets.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto
from pulumi.automation import _stack
from pulumi.automation.events import EngineEvent

from localcluster.pulumi_cli import CommandResult, Workspace


def automation(ws: Workspace, stack: str, operation: str, *options: str, check: bool = True) -> CommandResult:
    """Run `preview` or `up` of `stack` in `ws` with `options` through the Automation API, as pulumi/actions does."""
    label = f"automation {operation} {' '.join(options)}".strip()
    return ws.run_python_module(label, "e2e.automation", str(ws.root), stack, operation, *options, check=check)


def _program(workdir: Path) -> auto.PulumiFn:
    def run() -> None:
        sys.path.insert(0, str(workdir))
        runpy.run_path(str(workdir / "__main__.py"), run_name="__main__")

    return run


def _keep_event_log(path: Path) -> Callable[[object], None]:
    """Keep the CLI's engine events in `path`, one JSON object per line, as `pulumi preview --event-log` writes them
    (what the preview workflow's report reads).

    Asked for events, the SDK has the CLI stream each one as JSON text (`--event-log tcp://...`, over gRPC) and
    parses it with `EngineEvent.from_json`; this records each event's JSON on its way there.
    """
    path.write_text("")
    parse = EngineEvent.from_json

    class RecordedEvent(EngineEvent):
        @classmethod
        def from_json(cls, data: dict[str, Any]) -> Any:
            with path.open("a") as log:
                log.write(json.dumps(data) + "\n")
            return parse(data)

    _stack.EngineEvent = RecordedEvent  # type: ignore[attr-defined]  # the name _stack's servicer parses with
    return lambda event: None


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the operation, print the CLI's output; exit 1 when it fails."""
    parser = argparse.ArgumentParser(prog="python -m e2e.automation")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("stack")
    parser.add_argument("operation", choices=["preview", "up"])
    parser.add_argument("--policy-pack", action="append", default=[])
    parser.add_argument("--policy-pack-config", action="append", default=[])
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--diff", action="store_true")
    parser.add_argument("--expect-no-changes", action="store_true")
    parser.add_argument("--event-log", type=Path, help="keep the CLI's event log (`--event-log`'s file) here")
    args = parser.parse_args(argv)
    on_event = None
    if args.event_log is not None:
        on_event = _keep_event_log(args.event_log.resolve())

    workdir = args.workdir.resolve()
    binary = Path(os.environ["E2E_PULUMI"])
    command = auto.PulumiCommand(root=str(binary.parent.parent), skip_version_check=True)
    stack = auto.select_stack(
        args.stack,
        project_name=yaml.safe_load((workdir / "Pulumi.yaml").read_text())["name"],
        program=_program(workdir),
        opts=auto.LocalWorkspaceOptions(work_dir=str(workdir), pulumi_command=command),
    )
    operation: Callable[..., object] = (
        stack.preview if args.operation == "preview" else functools.partial(stack.up, show_secrets=False)
    )
    try:
        operation(
            policy_packs=[str(workdir / pack) for pack in args.policy_pack] or None,
            policy_pack_configs=[str(workdir / config) for config in args.policy_pack_config] or None,
            refresh=args.refresh,
            diff=args.diff,
            expect_no_changes=args.expect_no_changes,
            on_output=print,
            on_event=on_event,
        )
    except auto.errors.CommandError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

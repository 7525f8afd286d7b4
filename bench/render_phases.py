"""Benchmark the pull request's loop: `make render STACK=dev` and `--all`, end to end and phase by phase.

    .venv/bin/python bench/render_phases.py [--runs 5]

End to end: `python -m tools.render dev` and `python -m tools.render --all` as fresh processes (what a developer and
the preview workflow run), the median of `--runs`. Then each phase of one stack, measured on its own, largest first:
the interpreter with the render's imports (a fresh process), the program under the mocks, the strict schemas of both
Kubernetes versions, the policy pack's checks, and checkov (its own process, import included; the render starts it
first so that it overlaps the rest). Prints the table; asserts nothing. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.policy_checks import pack_violations
from tools.render import render_stack, write_manifests
from tools.stack_config import REPO_ROOT as ROOT
from tools.validate import CheckovScan, schema_problems

PYTHON = str(ROOT / ".venv" / "bin" / "python")


def _median_seconds(action: Callable[[], object], runs: int) -> float:
    """The median wall time of `runs` calls of `action`."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _process(*args: str) -> Callable[[], object]:
    """Run a fresh interpreter with `args` in the checkout; fail loudly if it fails."""
    return lambda: subprocess.run([PYTHON, *args], cwd=ROOT, check=True, capture_output=True)


def _checkov_alone(directory: Path) -> None:
    with CheckovScan() as checkov:
        checkov.scan(directory)
        checkov.problems()


def main() -> int:
    """Measure, then print the end-to-end figures and the phases largest first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs: int = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch)
        whole = {
            "make render STACK=dev (python -m tools.render dev)": _median_seconds(
                _process("-m", "tools.render", "dev", "--output", str(output)), runs
            ),
            "make render-all (python -m tools.render --all)": _median_seconds(
                _process("-m", "tools.render", "--all", "--output", str(output)), runs
            ),
        }
        rendered = render_stack("dev")
        directory = write_manifests(rendered, output)
        phases = {
            "interpreter and the render's imports": _median_seconds(_process("-c", "import tools.render"), runs),
            "the program under the mocks (dev)": _median_seconds(lambda: render_stack("dev"), runs),
            "strict schemas, both Kubernetes versions": _median_seconds(
                lambda: schema_problems(rendered.manifests), runs
            ),
            "the policy pack's checks": _median_seconds(lambda: pack_violations(rendered.run), runs),
            "checkov, alone (its own process, import included)": _median_seconds(
                lambda: _checkov_alone(directory), runs
            ),
        }
    print(f"render, median of {runs} runs, seconds")
    for what, seconds in whole.items():
        print(f"  {what:<58} {seconds:6.2f}")
    print("phases of one stack, each measured alone, largest first")
    for what, seconds in sorted(phases.items(), key=lambda item: item[1], reverse=True):
        print(f"  {what:<58} {seconds:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

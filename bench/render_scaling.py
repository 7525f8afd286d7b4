"""Benchmark the offline render: each stack, all stacks, and a synthetic stack of 1, 10 and 50 services.

    .venv/bin/python bench/render_scaling.py [--no-checkov]

Stack timings run the real command (`python -m tools.render`) end to end,
process start included. The scaling table builds a synthetic stack config,
runs the same components once per service under the shared mocks, writes
the manifests, and checks them as `tools.render` does: checkov starts
before the program, then scans while the schemas are checked. Prints
tables; asserts only that every check passes, never a time.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from harness.stack_values import TEST_SECRETS, config_values, valid_config
from tools.manifests import to_manifests
from tools.mocks import run_program
from tools.render import Rendered, check_stacks, write_manifests
from tools.stack_config import REPO_ROOT, stack_names
from tools.validate import CheckovScan, schema_problems
from webapp_platform.components.webapp import WebApp, WebAppArgs
from webapp_platform.config.loading import parse_settings, read_raw_config

WIDTHS = (8, 9, 15, 16, 7, 16, 14)


def time_command(args: list[str]) -> float:
    """Wall seconds of one command run from the repository root; raises if it fails."""
    started = time.perf_counter()
    subprocess.run(args, cwd=REPO_ROOT, check=True, capture_output=True, timeout=900)
    return time.perf_counter() - started


def synthetic_program(services: int) -> None:
    """The stack program, with `services` copies of the service in one namespace."""
    raw, secret_keys = read_raw_config()
    stack = parse_settings(pulumi.get_stack(), raw, secret_keys)
    namespace = stack.settings.namespace_name(stack.name)
    for number in range(services):
        name = f"svc{number:03d}"
        # Each service needs its own object names (webapp:name), as separate services would have.
        own = stack.model_copy(update={"settings": stack.settings.model_copy(update={"name": name})})
        WebApp(name, WebAppArgs(stack=own, namespace=namespace))


def scaling_row(services: int, workdir: Path, checkov: bool) -> tuple[int, int, float, float, float, float]:
    """Render and check a synthetic stack as `tools.render` does; return services, manifests, and seconds.

    The seconds are: the program and write; the checks (schema, with checkov scanning alongside); the wall
    time of it all, checkov's start included; and the schema check timed again on its own, for reference.
    """
    raw = valid_config(
        replicas=3,
        ingress={"enabled": True, "host": "bench.example.com"},
        autoscaling={"enabled": True, "minReplicas": 3, "maxReplicas": 6},
        appConfig={"GREETING": "bench"},
    )
    values, secret_keys = config_values(raw, TEST_SECRETS)
    started = time.perf_counter()
    with CheckovScan() if checkov else contextlib.nullcontext() as scan:
        run = run_program(
            lambda: synthetic_program(services), project="webapp", stack="bench", config=values, secret_keys=secret_keys
        )
        rendered = Rendered("bench", run, to_manifests(run.resources))
        directory = write_manifests(rendered, workdir / f"n{services}")
        program_seconds = time.perf_counter() - started
        problems = check_stacks({"bench": rendered}, {"bench": directory}, workdir, scan)
    total_seconds = time.perf_counter() - started
    assert not problems["bench"], problems["bench"][:5]

    schema_started = time.perf_counter()
    schema_problems(rendered.manifests)
    schema_seconds = time.perf_counter() - schema_started
    checks_seconds = total_seconds - program_seconds
    return services, len(rendered.manifests), program_seconds, checks_seconds, total_seconds, schema_seconds


def main() -> None:
    """Print the stack timings and the scaling table, each the median of `--rounds` runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-checkov", action="store_true", help="leave checkov out of every timing")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure; the median is printed (default 3)")
    args = parser.parse_args()
    flags = ["--no-checkov"] if args.no_checkov else []
    render = [sys.executable, "-m", "tools.render", *flags]

    print(
        "End-to-end `python -m tools.render` (process start, program, write, schema"
        + ("" if flags else ", checkov")
        + f"), median of {args.rounds}"
    )
    for target in [*stack_names(), "--all"]:
        seconds = statistics.median(time_command([*render, target]) for _ in range(args.rounds))
        print(f"  {target:<10} {seconds:6.2f}s")
    print()

    print(
        "Synthetic stack, N services (each: ConfigMap, Secret, Deployment, Service, NetworkPolicy, PDB, HPA, Ingress),"
        f" median of {args.rounds}"
    )
    checks = "schema" if args.no_checkov else "schema+checkov"
    header: tuple[str, ...] = ("services", "manifests", "program+write s", f"{checks} s", "total s")
    header += ("total/service ms", "schema alone s")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, WIDTHS, strict=True)))
    with tempfile.TemporaryDirectory() as tmp:
        for services in (1, 10, 50):
            rows = [scaling_row(services, Path(tmp), not args.no_checkov) for _ in range(args.rounds)]
            count, manifests = rows[0][:2]
            program, checked, total, schema = (statistics.median(row[column] for row in rows) for column in range(2, 6))
            cells = (
                f"{count}",
                f"{manifests}",
                f"{program:.2f}",
                f"{checked:.2f}",
                f"{total:.2f}",
                f"{1000 * total / count:.0f}",
                f"{schema:.2f}",
            )
            print(" ".join(f"{cell:>{width}}" for cell, width in zip(cells, WIDTHS, strict=True)))


if __name__ == "__main__":
    main()

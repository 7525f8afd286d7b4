"""Render stacks offline: run the real __main__.py under mocks and write one manifest per object.

    python -m tools.render dev            # one stack
    python -m tools.render --all          # every Pulumi.<stack>.yaml
    python -m tools.render dev --no-checkov

Writes build/manifests/<stack>/NN-<kind>-<name>.yaml (stable names, stable
content), prints a summary table, validates every manifest against the
Kubernetes schemas, runs the policy pack's checks on what the program
registered and runs checkov. Exits 1 when the program or a check fails, with
the reasons on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import runpy
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.manifests import Manifest, to_manifests
from tools.mocks import ProgramRun, run_program
from tools.policy_checks import pack_violations
from tools.stack_config import REPO_ROOT, StackConfig, load_stack_config, stack_names
from tools.validate import SUPPORTED_KUBERNETES, CheckovFinding, CheckovScan, schema_problems

DEFAULT_OUTPUT = REPO_ROOT / "build" / "manifests"
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass
class Rendered:
    """One stack's rendering: the program run, its manifests, and notes for the reader."""

    stack: str
    run: ProgramRun
    manifests: list[Manifest]
    notes: list[str] = field(default_factory=list)

    @property
    def outputs(self) -> dict[str, Any]:
        """The stack outputs the program exported."""
        return self.run.outputs


def run_main_program(config: StackConfig, program: Path = REPO_ROOT / "__main__.py") -> Rendered:
    """Run the Pulumi program with `config` under mocks; return its manifests and outputs."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    run = run_program(
        lambda: runpy.run_path(str(program), run_name="__main__"),
        project=config.project,
        stack=config.stack,
        config=config.values,
        secret_keys=config.secret_keys,
    )
    notes = [
        f"secret {name} is not in Pulumi.{config.stack}.yaml; rendered as a placeholder "
        f"(`pulumi up` needs: pulumi config set --secret --path '{config.project}:secrets.{name}' <value>)"
        for name in config.placeholders
    ]
    return Rendered(config.stack, run, to_manifests(run.resources), notes)


def render_stack(stack: str, root: Path = REPO_ROOT) -> Rendered:
    """Load the stack's config (declared secrets as placeholders) and run the program on it."""
    return run_main_program(load_stack_config(stack, root).with_placeholder_secrets())


def write_manifests(rendered: Rendered, output: Path) -> Path:
    """Replace `output/<stack>/` with one YAML file per manifest; return that directory."""
    directory = output / rendered.stack
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for manifest in rendered.manifests:
        (directory / manifest.filename).write_text(dump_yaml(manifest.body))
    return directory


def dump_yaml(body: dict[str, Any]) -> str:
    """YAML text with keys in the order given, for stable diffs.

    libyaml's emitter when PyYAML has it (five times faster, the same text; the snapshot tests compare it).
    """
    text: str = yaml.dump(body, Dumper=SAFE_DUMPER, sort_keys=False, default_flow_style=False, width=120)
    return text


def _container(manifest: Manifest) -> dict[str, Any]:
    containers = manifest.body.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
    return containers[0] if containers else {}


def summary_rows(rendered: Rendered) -> list[tuple[str, ...]]:
    """One row per object: kind, name, replicas, image, requests, limits, host."""
    rows: list[tuple[str, ...]] = []
    for manifest in rendered.manifests:
        spec = manifest.body.get("spec", {})
        container = _container(manifest) if manifest.kind == "Deployment" else {}
        resources = container.get("resources", {})
        requests = resources.get("requests", {})
        limits = resources.get("limits", {})
        replicas = spec.get("replicas", "") if manifest.kind == "Deployment" else ""
        if manifest.kind == "HorizontalPodAutoscaler":
            replicas = f"{spec.get('minReplicas')}-{spec.get('maxReplicas')}"
        hosts = ",".join(rule.get("host", "") for rule in spec.get("rules", [])) if manifest.kind == "Ingress" else ""
        rows.append(
            (
                manifest.kind,
                manifest.name,
                str(replicas),
                str(container.get("image", "")),
                f"{requests.get('cpu', '')}/{requests.get('memory', '')}" if requests else "",
                f"{limits.get('cpu', '')}/{limits.get('memory', '')}" if limits else "",
                hosts,
            )
        )
    return rows


def format_table(rows: list[tuple[str, ...]]) -> str:
    """A plain text table with a header."""
    header = ("KIND", "NAME", "REPLICAS", "IMAGE", "REQUESTS", "LIMITS", "HOST")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def print_summary(rendered: Rendered, directory: Path, seconds: float) -> None:
    """Print where a stack's manifests went, one row per object, its outputs and its notes."""
    shown = directory.relative_to(Path.cwd()) if directory.is_relative_to(Path.cwd()) else directory
    print(f"[{rendered.stack}] {len(rendered.manifests)} manifests in {shown} ({seconds:.2f}s)")
    print(format_table(summary_rows(rendered)))
    for key, value in sorted(rendered.outputs.items()):
        print(f"  output {key} = {value}")
    for note in rendered.notes:
        print(f"  note: {note}")
    print()


def checkov_by_stack(written: dict[str, Path], found: list[CheckovFinding]) -> dict[str, list[str]]:
    """checkov's findings from one scan (of the stack's directory when there is one, else of their root), by stack.

    A failure of checkov itself (a finding with no file) fails every stack.
    """
    if len(written) == 1:
        return {stack: [str(finding) for finding in found] for stack in written}
    grouped: dict[str, list[str]] = {stack: [] for stack in written}
    for finding in found:
        if finding.path is None:
            for problems in grouped.values():
                problems.append(finding.message)
            continue
        stack, _, rest = finding.path.partition("/")
        if stack in grouped:
            grouped[stack].append(f"{rest}: {finding.message}")
    return grouped


def check_stacks(
    rendered: dict[str, Rendered], written: dict[str, Path], output: Path, checkov: CheckovScan | None
) -> dict[str, list[str]]:
    """Every written stack's schema problems, the policy pack's violations and, with `checkov`, its checkov findings.

    checkov starts scanning first and the schemas and the pack are checked while it runs: on two cores they overlap.
    One checkov scan covers every stack (it takes seconds to start): the stack's own directory when there
    is one stack, else `output`, their common root.
    """
    if not written:
        return {}
    if checkov is not None:
        checkov.scan(next(iter(written.values())) if len(written) == 1 else output)
    problems = {stack: schema_problems(rendered[stack].manifests) for stack in written}
    for stack in written:
        problems[stack] += [f"policy pack: {violation}" for violation in pack_violations(rendered[stack].run)]
    if checkov is not None:
        for stack, found in checkov_by_stack(written, checkov.problems()).items():
            problems[stack] += found
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs="*", help="stack names (Pulumi.<name>.yaml)")
    parser.add_argument("--all", action="store_true", help="render every stack file found")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="output root (default build/manifests)")
    parser.add_argument("--no-checkov", action="store_true", help="skip checkov (schema validation still runs)")
    args = parser.parse_args(argv)

    stacks = stack_names() if args.all else args.stacks
    if not stacks:
        parser.error(f"name a stack ({', '.join(stack_names())}) or pass --all")

    failed = False
    rendered_stacks: dict[str, Rendered] = {}
    written: dict[str, Path] = {}
    with contextlib.ExitStack() as cleanup:
        # Started first: checkov's import runs on the second core while the programs run.
        checkov = None if args.no_checkov else cleanup.enter_context(CheckovScan())
        for stack in stacks:
            started = time.perf_counter()
            try:
                rendered = render_stack(stack)
            except Exception as error:  # any program or config error fails the render, with its message
                print(f"[{stack}] the program failed: {error}", file=sys.stderr)
                failed = True
                continue
            directory = write_manifests(rendered, args.output)
            print_summary(rendered, directory, time.perf_counter() - started)
            rendered_stacks[stack] = rendered
            written[stack] = directory
        problems = check_stacks(rendered_stacks, written, args.output, checkov)
    for stack in written:
        if problems[stack]:
            failed = True
            print(f"[{stack}] {len(problems[stack])} check(s) failed:", file=sys.stderr)
            for problem in problems[stack]:
                print(f"  - {problem}", file=sys.stderr)
        else:
            checks = "schema, policy pack" + ("" if args.no_checkov else " and checkov")
            print(f"[{stack}] {checks} checks passed (Kubernetes {' and '.join(SUPPORTED_KUBERNETES)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

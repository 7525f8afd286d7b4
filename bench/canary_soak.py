"""Benchmark the canary on the real node: many clean releases in a row, each promoted, none rolled back.

    sudo .venv/bin/python bench/canary_soak.py [--releases 10]

CI promotes three clean releases (e2e/test_canary.py, `CANARY_CLEAN_RELEASES`); this runs the same test with more,
inside network and mount namespaces of its own as `make e2e` does, with the binaries and the image built (`make
engine cluster node image`). It prints the seconds each release took to be promoted and their median; it asserts what
the test asserts (every release promoted, no failed request), never a time. Needs root, as the real node does.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PROMOTED = re.compile(r"^\s*([\d.]+) s\s+canary: clean release (\d+) promoted", re.MULTILINE)


def run_soak(releases: int) -> tuple[int, str]:
    """Run the clean-release test with `releases` releases; its exit code and output."""
    command = [
        str(ROOT / "e2e" / "in-namespaces"),
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "pytest",
        "e2e/test_canary.py",
        "-k",
        "test_clean_releases_are_never_rolled_back",
    ]
    env = {**os.environ, "CANARY_CLEAN_RELEASES": str(releases)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return result.returncode, result.stdout + result.stderr


def main() -> int:
    """Run the soak, then print each release's seconds from the suite's engine timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10)
    releases = parser.parse_args().releases
    code, output = run_soak(releases)
    if code != 0:
        print(output[-6000:], file=sys.stderr)
        print(f"the soak failed (pytest exited {code})", file=sys.stderr)
        return 1
    seconds = [float(match.group(1)) for match in _PROMOTED.finditer(output)]
    print(f"canary soak: {len(seconds)} clean releases promoted in a row on the real node, seconds each")
    for number, value in enumerate(seconds, start=1):
        print(f"  release {number:>2}  {value:6.1f}")
    if seconds:
        print(f"  median      {statistics.median(seconds):6.1f}  [{min(seconds):.1f}-{max(seconds):.1f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

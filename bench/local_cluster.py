"""Benchmark `make up` as a user meets it, with the binaries built: from nothing running to the first answer, a
redeploy after a change to app/, and `make down`.

    sudo .venv/bin/python bench/local_cluster.py [--runs N]

Each run works in a fresh clone that shares this checkout's builds (harness/checkout.py), times the commands end
to end (make included) and checks their result: `make up` returns once the route answered 200 through the host's
forwarded port; the redeploy returns once the new image rolled out under load with no failed request. Prints one
table; asserts only that every command succeeded, never a time. Needs root, as `make up` does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.checkout import clone_with_builds, make


def _timed(clone: Path, target: str) -> float:
    started = time.monotonic()
    result = make(clone, target)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"make {target} failed:\n{result.stdout}{result.stderr}")
    return seconds


def one_run() -> tuple[float, float, float]:
    """(up from nothing running, redeploy after an app change, down) in seconds, in a fresh clone."""
    with tempfile.TemporaryDirectory() as base:
        clone = clone_with_builds(Path(base))
        try:
            up = _timed(clone, "up")
            views = clone / "app" / "views.py"
            views.write_text(views.read_text() + "\n# a change: a new image\n")
            redeploy = _timed(clone, "up")
        finally:
            down = _timed(clone, "down")
    return up, redeploy, down


def main() -> int:
    """Run, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = [one_run() for _ in range(parser.parse_args().runs)]
    print(f"make up, {len(runs)} runs (binaries built, BuildKit's cache warm); seconds, median [min-max]")
    for index, what in enumerate(("up, nothing running, to the first 200", "redeploy after an app change", "down")):
        values = [run[index] for run in runs]
        print(f"  {what:<40} {statistics.median(values):6.1f}  [{min(values):.1f}-{max(values):.1f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

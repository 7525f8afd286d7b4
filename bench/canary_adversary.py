"""The release driver's adversary (tests/test_canary_model.py) run longer than `make test` runs it, printing what it
explored: runs by how they ended, the faults that struck and where, the checks Prometheus served by their mode.

    ADVERSARY_SEED=123 .venv/bin/python -m bench.canary_adversary [--examples 400] [--steps 10]

A failure prints hypothesis's shortest sequence that breaks one of the driver's promises, reproducible with the
printed seed.
"""

from __future__ import annotations

import argparse
import time

from tests.test_canary_model import ReleaseDriver, check_the_release_driver


def main() -> None:
    """Run the model for the examples and steps asked, then print what it explored and how long it took."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    started = time.monotonic()
    try:
        check_the_release_driver(args.examples, args.steps)
    finally:
        print(f"explored in {time.monotonic() - started:.0f} s:")
        for what, count in sorted(ReleaseDriver.explored.items()):
            print(f"  {count:6d}  {what}")


if __name__ == "__main__":
    main()

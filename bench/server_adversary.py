"""Run the server's randomized adversary (`bench/adversary.py`) for as long as asked and print its figures.

    .venv/bin/python bench/server_adversary.py [--seed N] [--seconds 120]

One worker at a connection limit of `adversary.LIMIT`, its management port,
and rounds of random client mixes drawn from the seed (printed first; pass it
back with --seed to replay the same clients). Prints the episodes run, the
answers by status, the evictions, the probes' slowest answer and every
broken invariant; exits 1 if there was one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import adversary
from harness.app_server import start_server


def main() -> None:
    """Start the server, attack it, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="the seed to replay (default: ADVERSARY_SEED or new)")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to attack")
    args = parser.parse_args()
    seed = adversary.seed_from_env() if args.seed is None else args.seed
    print(f"adversary seed {seed}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), adversary.SERVER_ENV, command=adversary.SERVER_COMMAND)
        try:
            server.wait_until_ready()
            report = adversary.run(server, seed, args.seconds)
        finally:
            server.stop()
    print(report.render())
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()

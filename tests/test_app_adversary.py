"""The server against a seeded, randomized adversary (`bench/adversary.py`): random mixes of hostile and honest
clients at one worker's connection limit and on the management port, with every invariant checked as they run.

The seed comes from ADVERSARY_SEED (else a fresh one) and is printed, and named in any failure, so a failing run
replays with `ADVERSARY_SEED=<seed> make stress`; ADVERSARY_SECONDS sets its length (20 s here; the benchmark
`bench/server_adversary.py` runs as long as asked).
"""

from __future__ import annotations

import os

import pytest

from bench import adversary
from tests.conftest import StartServer

pytestmark = [pytest.mark.slow, pytest.mark.stress]


def test_the_server_keeps_its_invariants_under_a_randomized_adversary(start_app: StartServer) -> None:
    seed = adversary.seed_from_env()
    print(f"adversary seed {seed} (replay: ADVERSARY_SEED={seed})")
    server = start_app(command=adversary.SERVER_COMMAND, **adversary.SERVER_ENV)
    server.wait_until_ready()
    report = adversary.run(server, seed, float(os.environ.get("ADVERSARY_SECONDS", "20")))
    print(report.render())
    assert not report.violations, report.render()

"""The open-files limit the server raises for itself before it holds connections."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Iterator

import pytest

from app.open_files import FILES_BESIDES_CONNECTIONS, raise_open_files_limit


@pytest.fixture
def restored_limit() -> Iterator[tuple[int, int]]:
    """The process's limits, put back after the test (lowering a soft limit is reversible, a hard one is not)."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_a_low_soft_limit_is_raised_to_what_the_connections_need(restored_limit: tuple[int, int]) -> None:
    _, hard = restored_limit
    needed = 1000 + FILES_BESIDES_CONNECTIONS
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"this machine's hard open-files limit {hard} is below {needed}; the test needs it above")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    limit = raise_open_files_limit(1000)
    assert (limit.before, limit.after, limit.needed, limit.sufficient) == (256, needed, needed, True)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (needed, hard), (
        "raised to what is needed, not to the hard limit"
    )


def test_a_soft_limit_already_high_enough_is_never_lowered(restored_limit: tuple[int, int]) -> None:
    _, hard = restored_limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (5000, hard))
    limit = raise_open_files_limit(1000)
    assert (limit.before, limit.after, limit.sufficient) == (5000, 5000, True)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (5000, hard)


def test_a_hard_limit_below_the_need_raises_to_it_and_says_it_is_not_enough() -> None:
    # A hard limit cannot be raised back, so this runs in a process of its own.
    code = (
        "import json, resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 300))\n"
        "from app.open_files import raise_open_files_limit\n"
        "limit = raise_open_files_limit(1000)\n"
        "print(json.dumps([limit.before, limit.after, limit.sufficient, resource.getrlimit(resource.RLIMIT_NOFILE)]))\n"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(answer.stdout) == [100, 300, False, [300, 300]]

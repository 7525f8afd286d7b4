"""A pytest plugin that says where a suite's time goes: the seconds each test module took, setup and teardown included.

`make e2e` and `make stress` load it (`-p harness.module_durations`). At the end of a run it prints one line per
module, slowest first, and, when `$BUILD_TIMES` names a file (as `.ci/run` sets it), appends the same figures to it
as `e2e<TAB>module<TAB>seconds`, so that CI's closing table shows every module beside the builds. A module's figure
is the sum of its tests' phases, so a session fixture's start-up (a cluster, say) counts in the module that first
needed it. The figures are measured, never asserted.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

_SECONDS_BY_MODULE: defaultdict[str, float] = defaultdict(float)


def module_of(nodeid: str) -> str:
    """The test file a node id belongs to: `e2e/test_canary.py::test_x[dev]` -> `e2e/test_canary.py`."""
    return nodeid.split("::", 1)[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add each phase (setup, call, teardown) of each test to its module's total."""
    _SECONDS_BY_MODULE[module_of(report.nodeid)] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the modules slowest first and hand them to `.ci/run`'s table (once: not from pytest-xdist's workers)."""
    if not _SECONDS_BY_MODULE or hasattr(terminalreporter.config, "workerinput"):
        return
    ranked = sorted(_SECONDS_BY_MODULE.items(), key=lambda item: item[1], reverse=True)
    terminalreporter.section("seconds per test module")
    for module, seconds in ranked:
        terminalreporter.write_line(f"{seconds:8.1f} s  {module}")
    build_times = os.environ.get("BUILD_TIMES")
    if build_times:
        with Path(build_times).open("a", encoding="utf-8") as table:
            table.writelines(f"e2e\t{module}\t{round(seconds)}\n" for module, seconds in ranked)

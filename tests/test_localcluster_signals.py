"""`python -m localcluster up` can be interrupted however it was started (localcluster/__main__.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tools.stack_config import REPO_ROOT

_UP_WAITING = """
import sys, time
import localcluster.__main__ as localcluster

def waiting_up(stack, kubeconfig):
    print("ready", flush=True)
    time.sleep(60)
    return 0

localcluster._up = waiting_up
sys.exit(localcluster.main({argv}))
"""


def _started_with_sigint_ignored(script: str) -> subprocess.Popen[str]:
    """A child that inherits SIGINT ignored (a shell's `trap "" INT`), as a background job of a non-interactive shell
    does."""
    return subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$0" -c "$1"', sys.executable, script],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sigint_interrupts_up_even_when_started_with_it_ignored() -> None:
    # `up` (its work replaced by a wait) started as a background job: the interrupt ends it as one at a terminal.
    with _started_with_sigint_ignored(_UP_WAITING.format(argv=["up"])) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            child.send_signal(signal.SIGINT)
            assert child.wait(timeout=30) == 130
        finally:
            child.kill()


def test_such_a_child_inherits_sigint_ignored() -> None:
    # The premise of the test above: a child started so ignores the interrupt unless it says otherwise.
    with _started_with_sigint_ignored("import time; print('ready', flush=True); time.sleep(60)") as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            assert _sigint_ignored(child.pid)
        finally:
            child.kill()


def _sigint_ignored(pid: int) -> bool:
    """Whether the process's ignored signals (SigIgn in /proc/PID/status) include SIGINT."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return bool(int(fields["SigIgn"].strip(), 16) & (1 << (signal.SIGINT - 1)))

"""Shutdown signals that arrive while the server is still starting, kept for the master to act on.

In a container the server is PID 1, and the kernel drops a signal sent to
PID 1 that has no handler: a SIGTERM during the imports and set-up before
gunicorn's master installs its handlers (a pod deleted as it starts) was
lost, and the pod waited out its whole grace period. `python -m app`
installs these handlers first, before importing anything heavy; the master
takes what they caught once its own handlers are in place and drains as if
the signal had just arrived. Standard library only, so it can run first.
"""

from __future__ import annotations

import signal
from types import FrameType

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_caught: list[int] = []


def _remember(sig: int, frame: FrameType | None) -> None:
    _caught.append(sig)


def hold_shutdown_signals() -> None:
    """Catch SIGTERM and SIGINT from now until the master replaces these handlers with its own."""
    for sig in SHUTDOWN_SIGNALS:
        signal.signal(sig, _remember)


def take_held_signals() -> list[int]:
    """The signals caught so far, oldest first; each is returned once."""
    held = list(_caught)
    del _caught[: len(held)]
    return held

"""Free ports, bounded waits and stopping a child process."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable

STOP_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(
    what: str,
    ready: Callable[[], bool],
    timeout: float,
    on_timeout: Callable[[], str] = lambda: "",
    alive: Callable[[], bool] = lambda: True,
    *,
    interval: float = 0.1,
) -> None:
    """Poll `ready` until it is true; after `timeout` seconds, or once `alive()` is false, fail naming `what`.

    An exception from `ready` counts as not ready yet (a server still starting refuses connections); the last
    one is in the failure's message, with whatever `on_timeout` says (a log's tail).
    """
    deadline = time.monotonic() + timeout
    last_error = ""  # its repr only: keeping the exception would keep its frames (and open sockets) alive
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"a process exited while waiting for {what}\n{on_timeout()}")
        try:
            if ready():
                return
        except Exception as error:  # retried until the deadline, then reported
            last_error = repr(error)
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"{what}: not within {timeout:g} s{detail}\n{on_timeout()}")


def stop(process: subprocess.Popen[bytes], grace: float = 0.0, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Make sure a child process is gone: SIGTERM and up to `grace` seconds to exit first if `grace` is given,
    then SIGKILL, then a bounded wait."""
    if process.poll() is None and grace > 0:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    if process.poll() is None:
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)

"""Reading an HTTP request head without blocking, for the servers that read heads on one thread for many clients.

The workers' main loop (`app.worker`) and the management port (`app.management`)
both append what a socket has to a per-connection buffer until the blank line
that ends the head arrives. A client may send its head a byte at a time, so the
buffer is a bytearray (an append, not a copy of the whole) and only the new
bytes, plus the three before them where the blank line may straddle two reads,
are searched.
"""

from __future__ import annotations

import socket

HEAD_END = b"\r\n\r\n"
HEAD_COMPLETE_KEY = "webapp.head_complete"
"""The WSGI environ key of the `time.perf_counter()` at which the worker had the request's whole head: the app's
latency counts from there, so the wait for a free thread is in it."""


def head_ended(head: bytearray, start: int = 0) -> bool:
    """Whether the blank line that ends a request head is in `head` at or after `start`."""
    return head.find(HEAD_END, start) >= 0


def read_head_bytes(sock: socket.socket, head: bytearray, size: int) -> bool | None:
    """Append up to `size` bytes the non-blocking `sock` has to `head`.

    None when the client closed or reset the connection; else whether the head has ended (False also when there was
    nothing to read yet).
    """
    try:
        data = sock.recv(size)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return None
    if not data:
        return None
    searched_before = max(0, len(head) - len(HEAD_END) + 1)
    head += data
    return head_ended(head, searched_before)

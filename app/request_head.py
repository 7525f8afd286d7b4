"""Reading an HTTP request head without blocking, for the servers that read heads on one thread for many clients.

The workers' main loop (`app.worker`) and the management port (`app.management`)
both append what a socket has to a per-connection buffer until the blank line
that ends the head arrives. A client may send its head a byte at a time, so the
buffer is a bytearray (an append, not a copy of the whole) and only the new
bytes, plus the two before them where the blank line may straddle two reads,
are searched.

A head ends at its first blank line, whether its lines end in CRLF or in a
bare LF: RFC 9112 (2.2) lets a server accept a bare LF or refuse the request,
never wait for a CRLF that will not come. The traffic port's parser (gunicorn)
then refuses a bare LF with the app's JSON 400; the management port's
(http.server) accepts it.
"""

from __future__ import annotations

import re
import socket

_BLANK_LINE = re.compile(rb"\n\r?\n")
"""The end of a request head: a line feed, then an empty line (CRLF or bare LF)."""
_OVERLAP = 2
"""Bytes before the new ones a blank line may have started in."""
HEAD_COMPLETE_KEY = "webapp.head_complete"
"""The WSGI environ key of the `time.perf_counter()` at which the worker had the request's whole head: the app's
latency counts from there, so the wait for a free thread is in it."""


def head_length(head: bytes | bytearray, start: int = 0) -> int | None:
    """Where the request head in `head` ends (just after its blank line), searching from `start`; None if not yet."""
    found = _BLANK_LINE.search(head, start)
    return found.end() if found else None


def head_ended(head: bytearray, start: int = 0) -> bool:
    """Whether the blank line that ends a request head is in `head` at or after `start`."""
    return head_length(head, start) is not None


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
    searched_before = max(0, len(head) - _OVERLAP)
    head += data
    return head_ended(head, searched_before)

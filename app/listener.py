"""Stop a listening TCP socket from admitting new connections, without dropping queued ones.

Closing a listening socket resets every connection still waiting in its
accept queue, and a connection can join that queue at any moment up to the
close. A classic BPF filter that drops pure SYN segments closes that race:
new handshakes cannot start (the client retries its SYN about a second
later and is then refused, never reset, so the request is always safe to
retry), while handshakes already under way complete and wait to be
accepted. Linux only; elsewhere it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys

SO_ATTACH_FILTER = 26  # from <asm-generic/socket.h>

# A socket filter on a TCP socket sees the segment from its TCP header on;
# byte 13 holds the flags. Drop SYN without ACK, pass everything else.
_DROP_NEW_HANDSHAKES = (
    (0x30, 0, 0, 13),  # ldb [13]
    (0x54, 0, 0, 0x12),  # and #(SYN|ACK)
    (0x15, 0, 1, 0x02),  # jeq #SYN, drop, pass
    (0x06, 0, 0, 0),  # drop: ret #0
    (0x06, 0, 0, 0xFFFFFFFF),  # pass: ret #-1
)
_PROGRAM = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in _DROP_NEW_HANDSHAKES))


def refuse_new_connections(listener: socket.socket) -> bool:
    """Make `listener` ignore new SYNs from now on; True if the filter is in place."""
    if not sys.platform.startswith("linux"):
        return False
    program = struct.pack("HL", len(_DROP_NEW_HANDSHAKES), ctypes.addressof(_PROGRAM))
    try:
        listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
    except OSError:
        return False
    return True

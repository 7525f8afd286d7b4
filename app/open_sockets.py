"""The sockets a worker really has open, read by the master from /proc, to check the worker's own count against.

A worker counts the connections it holds (`app.worker`); a connection it
counted twice or dropped without closing would make that count drift from
what the kernel holds, and nothing else would notice until the limit or the
graceful stop went wrong. The master lists `/proc/<pid>/fd` of each worker at
scrape time (no cost while nobody scrapes) and counts its sockets, leaving out
the listening sockets every worker shares with the master.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Iterable

_SOCKET_LINK = "socket:["


def socket_inodes(sockets: Iterable[socket.socket]) -> frozenset[int]:
    """The inodes of `sockets` (the same in every process holding a copy), skipping closed ones."""
    inodes = set()
    for sock in sockets:
        if sock.fileno() >= 0:
            inodes.add(os.fstat(sock.fileno()).st_ino)
    return frozenset(inodes)


def open_client_sockets(pid: int, excluded: Collection[int]) -> int | None:
    """How many sockets process `pid` has open besides the `excluded` inodes (its listeners); None when its
    /proc entry cannot be read (it exited, or another user's process)."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return None
    count = 0
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:  # closed since the listing
            continue
        if target.startswith(_SOCKET_LINK) and int(target[len(_SOCKET_LINK) : -1]) not in excluded:
            count += 1
    return count

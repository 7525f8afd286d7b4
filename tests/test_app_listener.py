"""The SYN filter that lets a listener stop admitting connections without resetting queued ones."""

from __future__ import annotations

import socket
import sys

import pytest

from app.listener import refuse_new_connections

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="socket filters are Linux-only")


def test_queued_connections_survive_new_ones_are_not_admitted_then_refused() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        address = listener.getsockname()
        with socket.create_connection(address, timeout=2) as queued:
            queued.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert refuse_new_connections(listener) is True

            with pytest.raises(TimeoutError):
                socket.create_connection(address, timeout=0.3).close()

            accepted, _ = listener.accept()
            with accepted:
                assert accepted.recv(64).startswith(b"GET /")
            listener.setblocking(False)
            with pytest.raises(BlockingIOError):
                listener.accept()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2).close()

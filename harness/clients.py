"""Clients that try to hurt the server, shared by the hostile-client tests and benchmark."""

from __future__ import annotations

import http.client
import socket
import string
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

HALF_A_HEAD = b"GET / HTTP/1.1\r\nHost: webapp\r\nUser-Agent: slow"
"""The start of a request head that never ends."""


@contextmanager
def stalled_connections(port: int, count: int, first_bytes: bytes) -> Iterator[list[socket.socket]]:
    """`count` connections to `port` that each send `first_bytes` (maybe nothing) and then nothing more."""
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            client = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            if first_bytes:
                client.sendall(first_bytes)
            sockets.append(client)
        yield sockets


def read_until_closed(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (an answer with `Connection: close`)."""
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


def odd_methods(count: int) -> list[str]:
    """`count` distinct methods no server knows: X followed by four capital letters."""
    letters = string.ascii_uppercase
    return ["X" + "".join(letters[(n // 26**i) % 26] for i in range(4)) for n in range(count)]


def send_methods(port: int, methods: list[str]) -> list[int]:
    """Send `GET /`-like requests with each method in turn over one keep-alive connection; their statuses."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    statuses = []
    try:
        for method in methods:
            connection.request(method, "/")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        connection.close()
    return statuses


@contextmanager
def idle_keep_alive_connections(port: int, count: int) -> Iterator[list[http.client.HTTPConnection]]:
    """`count` connections to `port` that each send one keep-alive `GET /`, read the answer, and then go quiet."""
    with ExitStack() as stack:
        connections = []
        for _ in range(count):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            stack.callback(connection.close)
            connection.request("GET", "/")
            connection.getresponse().read()
            connections.append(connection)
        yield connections

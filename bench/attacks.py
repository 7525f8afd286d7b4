"""Hostile clients for the benchmark, each a loop that repeats one attack on a server until told to stop.

Each attack runs in a process of its own (`run_attack`), so the clients that
measure ordinary requests do not share an interpreter lock with it. Every
attack targets 127.0.0.1: the traffic port, the management port, or both.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event

from harness.clients import HALF_A_HEAD, odd_methods, send_methods

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    """The two ports of the server under attack."""

    traffic: int
    management: int


def _hold(port: int, stop: Event, first_bytes: bytes, held: int, *, pace: float = 0.0, recycle: bool = True) -> None:
    """Keep up to `held` connections that sent `first_bytes` and then nothing; with `recycle`, replace the oldest
    by a new one every `pace` seconds (each a new victim for the server's timeouts)."""
    opened: deque[socket.socket] = deque()
    try:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                client = socket.create_connection((LOOPBACK, port), timeout=2)
                if first_bytes:
                    client.sendall(first_bytes)
                opened.append(client)
            while len(opened) > held:
                opened.popleft().close()
            if len(opened) >= held and not recycle:
                stop.wait(0.5)
            elif pace:
                stop.wait(pace)
    finally:
        for client in opened:
            client.close()


def slow_heads(ports: Ports, stop: Event) -> None:
    """500 connections that sent half a request head, renewed 20 a second."""
    _hold(ports.traffic, stop, HALF_A_HEAD, 500, pace=0.05)


def silent_connections(ports: Ports, stop: Event) -> None:
    """500 connections that sent nothing, renewed 20 a second."""
    _hold(ports.traffic, stop, b"", 500, pace=0.05)


def never_closing(ports: Ports, stop: Event) -> None:
    """Requests with `Connection: close` (and malformed ones) whose clients never read or close: 200 held, renewed."""
    request = b"GET / HTTP/1.1\r\nHost: webapp\r\nConnection: close\r\n\r\n"
    malformed = b"GET / HTTP/1.1\r\nHost: webapp\r\nNot a header\r\n\r\n"
    while not stop.is_set():
        _hold(ports.traffic, stop, request, 100, pace=0.01)
        _hold(ports.traffic, stop, malformed, 100, pace=0.01)


def unread_bodies(ports: Ports, stop: Event) -> None:
    """POSTs announcing a 100 kB body that never comes (the app answers 405 without reading it): 100 held."""
    head = b"POST / HTTP/1.1\r\nHost: webapp\r\nContent-Length: 100000\r\n\r\n"
    _hold(ports.traffic, stop, head, 100, pace=0.02)


def idle_keep_alive(ports: Ports, stop: Event, count: int = 2100) -> None:
    """2,100 connections that each send one keep-alive `GET /`, read the answer and go quiet (two workers' worth),
    then 100 that say nothing: together more than the two workers' 2 x 1,000 connections."""
    held: list[http.client.HTTPConnection] = []
    try:
        for _ in range(count):
            if stop.is_set():
                break
            connection = http.client.HTTPConnection(LOOPBACK, ports.traffic, timeout=5)
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection.request("GET", "/")
                connection.getresponse().read()
            held.append(connection)
        _hold(ports.traffic, stop, b"", 100, recycle=False)
    finally:
        for connection in held:
            connection.close()


def _one_shot(port: int, request: bytes) -> None:
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=2) as client:
        client.sendall(request)
        while client.recv(65536):
            pass


MALFORMED_REQUESTS = (
    b"POST / HTTP/1.1\r\nHost: webapp\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: webapp\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: webapp\r\nX-Forwarded-For: evil, <script>\r\nConnection: close\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: webapp\r\n\r\n",
)
"""Malformed chunked bodies, requests without Host, bad versions, forged X-Forwarded-For, an oversized request line:
each a whole request the traffic port must answer (`bench/adversary.py` reuses them)."""
MANAGEMENT_JUNK = (
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
)
"""A request line over 8 KiB and the start of a TLS handshake, sent to the management port."""


def malformed_requests(ports: Ports, stop: Event) -> None:
    """MALFORMED_REQUESTS, back to back."""
    while not stop.is_set():
        for request in MALFORMED_REQUESTS:
            _one_shot(ports.traffic, request)


def odd_method_flood(ports: Ports, stop: Event) -> None:
    """Requests with made-up methods over one keep-alive connection, batch after batch."""
    methods = odd_methods(2000)
    while not stop.is_set():
        with contextlib.suppress(OSError, http.client.HTTPException):
            send_methods(ports.traffic, methods)


def management_oversized(ports: Ports, stop: Event) -> None:
    """MANAGEMENT_JUNK (request lines over 8 KiB, a TLS handshake) to the management port, back to back."""
    while not stop.is_set():
        for request in MANAGEMENT_JUNK:
            _one_shot(ports.management, request)


def management_connection_flood(ports: Ports, stop: Event) -> None:
    """Connections to the management port as fast as one process opens them, the newest 200 held silent."""
    _hold(ports.management, stop, b"", 200)


ATTACKS: dict[str, Callable[[Ports, Event], None]] = {
    "slow heads (500)": slow_heads,
    "silent connections (500)": silent_connections,
    "answered, never closed (200)": never_closing,
    "body never sent (100)": unread_bodies,
    "idle keep-alive (2,100) + silent": idle_keep_alive,
    "malformed requests": malformed_requests,
    "made-up methods": odd_method_flood,
    "management: oversized lines": management_oversized,
    "management: connection flood": management_connection_flood,
}
"""Every attack the benchmark runs, by the label its table prints."""


def run_attack(name: str, ports: Ports, stop: Event) -> None:
    """Process target: run the attack `name` until `stop` is set."""
    with contextlib.suppress(KeyboardInterrupt):
        ATTACKS[name](ports, stop)


def settle(seconds: float = 1.0) -> None:
    """Let an attack reach its steady state before measuring."""
    time.sleep(seconds)

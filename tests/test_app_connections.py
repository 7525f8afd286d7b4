"""Connections of the real server: `Connection: close` on every response from the start of the drain, and idle
keep-alive connections that outlive the load balancers' own idle timeout (the old 5 s was shorter than theirs).
"""

from __future__ import annotations

import http.client
import signal
import time
from contextlib import closing

import pytest

from harness.app_server import RunningServer
from harness.processes import wait_until

pytestmark = pytest.mark.slow


def test_every_response_closes_the_connection_once_the_drain_starts(draining_server: RunningServer) -> None:
    server = draining_server
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    busy = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    with closing(idle), closing(busy):
        _requests_around_the_signal(server, idle, busy)
    assert server.process.wait(timeout=20) == 0


def _requests_around_the_signal(
    server: RunningServer, idle: http.client.HTTPConnection, busy: http.client.HTTPConnection
) -> None:
    idle.request("GET", "/")
    first = idle.getresponse()
    first.read()
    assert first.getheader("Connection") == "keep-alive"
    busy.request("GET", "/debug/sleep?seconds=1")  # in flight when the signal arrives
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    wait_until("the drain starts", lambda: server.probe("/ready").status == 503, 2.0)

    idle.request("GET", "/")
    during = idle.getresponse()
    during.read()
    in_flight = busy.getresponse()
    in_flight.read()
    assert (during.status, during.getheader("Connection")) == (200, "close")
    assert (in_flight.status, in_flight.getheader("Connection")) == (200, "close")


def test_an_idle_keep_alive_connection_outlives_the_old_five_seconds(draining_server: RunningServer) -> None:
    with closing(http.client.HTTPConnection("127.0.0.1", draining_server.port, timeout=10)) as connection:
        connection.request("GET", "/")
        connection.getresponse().read()
        local_address = connection.sock.getsockname()
        time.sleep(6.0)
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert connection.sock.getsockname() == local_address, "the same connection, not a reconnect"

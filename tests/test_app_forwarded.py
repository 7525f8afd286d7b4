"""The client's address through trusted proxies: only an IP address is believed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from werkzeug.test import Client

from app.forwarded import believe_proxies


def _remote_addr(forwarded_for: str, trusted: int = 1) -> str:
    seen: dict[str, str] = {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen["address"] = environ["REMOTE_ADDR"]
        start_response("204 No Content", [])
        return []

    client = Client(believe_proxies(app, trusted))
    client.get("/", headers={"X-Forwarded-For": forwarded_for}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    return seen["address"]


@pytest.mark.parametrize(
    ("forwarded_for", "believed"),
    [
        ("203.0.113.66", "203.0.113.66"),
        ("2001:db8::1", "2001:db8::1"),
        ("198.51.100.9, 203.0.113.66", "203.0.113.66"),  # one proxy: its own entry, the last, is the client
        ("not-an-address", "10.1.2.3"),
        ("203.0.113.66:4711", "10.1.2.3"),
        ("<script>alert(1)</script>", "10.1.2.3"),
        (" 203.0.113.66 ", "203.0.113.66"),  # ProxyFix strips the spaces around each entry
        ("1" * 10_000, "10.1.2.3"),
        ("", "10.1.2.3"),
    ],
)
def test_a_forwarded_client_is_believed_only_when_it_is_an_ip_address(forwarded_for: str, believed: str) -> None:
    assert _remote_addr(forwarded_for) == believed


def test_two_proxies_believe_the_second_to_last_entry() -> None:
    assert _remote_addr("203.0.113.66, 198.51.100.9", trusted=2) == "203.0.113.66"
    assert _remote_addr("evil, 198.51.100.9", trusted=2) == "10.1.2.3"

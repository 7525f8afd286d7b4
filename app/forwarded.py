"""Believing the proxies in front: the client's address, scheme and host as they report them.

werkzeug's ProxyFix takes the last `trusted` entries of X-Forwarded-For as they
are, so a value that is not an address at all (`evil`, a port, a script) would
become the client's address in the access lines. Here such a value is not
believed: the connection's own peer stays the address. Who may reach the pods
at all (only the proxies) is the NetworkPolicy's job (`proxyNamespaces`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

from app.progress import WSGIApp


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def believe_proxies(wsgi_app: WSGIApp, trusted: int) -> WSGIApp:
    """`wsgi_app` behind ProxyFix for `trusted` proxies, a forwarded client that is not an IP address ignored."""

    def only_addresses(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not _is_address(environ.get("REMOTE_ADDR") or ""):
            environ["REMOTE_ADDR"] = environ["werkzeug.proxy_fix.orig"]["REMOTE_ADDR"]
        return wsgi_app(environ, start_response)

    return ProxyFix(only_addresses, x_for=trusted, x_proto=trusted, x_host=trusted)

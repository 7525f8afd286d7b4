"""One-shot HTTP GETs that record what happened instead of raising: a status and body, or the error's name."""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """What one HTTP request got: a status code and body, or the name of the error raised."""

    path: str
    status: int | None
    error: str | None
    sent_at: float
    body: bytes = b""
    seconds: float = 0.0


def get(
    port: int,
    path: str,
    timeout: float = 10.0,
    *,
    host: str = "127.0.0.1",
    host_header: str = "",
    forwarded_for: str = "",
) -> Outcome:
    """GET `path` from `host`:`port` on a fresh connection (`Connection: close`), with an optional Host header and
    X-Forwarded-For (as a proxy in front would send them)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"Connection": "close"}
    if host_header:
        headers["Host"] = host_header
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return Outcome(path, response.status, None, started, body, time.monotonic() - started)
    except (OSError, http.client.HTTPException) as error:
        return Outcome(path, None, type(error).__name__, started, b"", time.monotonic() - started)
    finally:
        connection.close()

"""Request IDs: one per request, taken from `X-Request-ID` or made, returned, and in every log line of the request.

A proxy in front (ingress-nginx, Traefik, an API gateway) usually sets
`X-Request-ID`; keeping it lets one ID follow a request through every hop's
logs. A missing or malformed one (anything but 1-128 of letters, digits and
`._:-`, so no client can inject text into the logs) is replaced by a fresh
random one. The ID is returned in the response's `X-Request-ID` header, kept in
the WSGI environ for the access line, and set in a context variable for the
request's thread, which `app.jsonlog` adds to every line logged meanwhile.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from app.progress import ClosingBody, WSGIApp

HEADER = "X-Request-ID"
ENVIRON_KEY = "webapp.request_id"
"""The WSGI environ key holding the request's ID (the access line reads it there)."""
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
"""The ID of the request this thread is serving, None outside a request."""


def request_id_for(incoming: str) -> str:
    """The client's or proxy's ID if it is well-formed, else a new random one."""
    return incoming if _VALID.fullmatch(incoming) else uuid.uuid4().hex


def with_request_ids(wsgi_app: WSGIApp) -> WSGIApp:
    """Wrap a WSGI app so each request has an ID: in the environ, the response header and the request's log lines."""

    def identified(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        environ[ENVIRON_KEY] = request_id
        token = current_request_id.set(request_id)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (HEADER, request_id)], exc_info)

        try:
            body = wsgi_app(environ, start)
        except BaseException:
            current_request_id.reset(token)
            raise
        return ClosingBody(body, lambda: current_request_id.reset(token))

    return identified

"""JSON error responses, and the app's own exception type.

Every error a client can see is a JSON object with `error` and `message`;
an unhandled exception becomes a 500 whose body holds no traceback (the
traceback goes to the error log on stderr).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError


class SettingsError(ValueError):
    """An environment variable holds a value the app cannot use."""


def _http_error(error: HTTPException) -> tuple[Response, int]:
    code = error.code or 500
    response = jsonify(error=(error.name or "Error").lower().replace(" ", "_"), message=error.description)
    if code == 405 and error.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return response, code


def _unhandled_error(error: InternalServerError) -> tuple[Response, int]:
    # Flask has already logged the original exception with its traceback.
    return jsonify(error="internal_server_error", message="The server hit an unexpected error."), 500


def register_error_handlers(app: Flask) -> None:
    """Answer every HTTP error and unhandled exception with JSON."""
    app.register_error_handler(InternalServerError, _unhandled_error)
    app.register_error_handler(HTTPException, _http_error)


_MISSING_HOST = b'{"error":"bad_request","message":"An HTTP/1.1 request must carry a Host header."}'


def require_host(wsgi_app: Any) -> Any:
    """Answer 400 to an HTTP/1.1 request with no Host header at all (RFC 9112, 3.2), before the app or the probes see
    it: which site it is for is unknown, and a proxy in front would have refused it too."""

    def checked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.1" and "HTTP_HOST" not in environ:
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(_MISSING_HOST)))]
            start_response("400 Bad Request", headers)
            return [_MISSING_HOST]
        return wsgi_app(environ, start_response)  # type: ignore[no-any-return]

    return checked

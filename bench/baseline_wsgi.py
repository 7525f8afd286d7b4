"""A bare WSGI callable returning a constant JSON body, served exactly like the app (same gunicorn settings).

Used by bench/app_server.py as the floor: what the server alone costs per request.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.jsonlog import configure_logging
from app.server import WebServer
from app.settings import AppSettings

BODY = b'{"status":"ready","version":"bench"}'


def constant_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with the same small JSON document."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


if __name__ == "__main__":
    settings = AppSettings.from_env()
    configure_logging(settings.log_level)
    WebServer(settings, app_factory=lambda: constant_app).run()

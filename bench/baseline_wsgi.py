"""The two floors bench/server_figures.py compares the app with, served exactly like the app (same gunicorn settings).

    python bench/baseline_wsgi.py bare     # a bare WSGI callable returning a constant JSON body
    python bench/baseline_wsgi.py flask    # a minimal Flask app returning the app's JSON for /, with no logging

The bare callable is what the server alone costs per request; the minimal
Flask app is what Flask alone costs, so the app's own additions (access log,
drain machinery, probes, metrics) are the difference between it and the app.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, Response, jsonify

from app.jsonlog import configure_logging
from app.server import WebServer
from app.settings import AppSettings

BODY = b'{"status":"ready","version":"bench"}'


def constant_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with the same small JSON document."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def minimal_flask() -> Flask:
    """Flask with one route answering what the app's / answers, and nothing else."""
    flask_app = Flask(__name__)
    flask_app.json.sort_keys = False  # type: ignore[attr-defined]

    @flask_app.get("/")
    def index() -> Response:
        return jsonify(message="Hello", version="bench", database_password_configured=False)

    return flask_app


FACTORIES: dict[str, Callable[[], Any]] = {"bare": lambda: constant_app, "flask": minimal_flask}

if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "bare"
    settings = AppSettings.from_env()
    configure_logging("warning")  # no access log: the floor pays for no logging
    server = WebServer(settings, app_factory=FACTORIES[kind])
    server.cfg.set("accesslog", None)
    server.run()

"""The bundled web service: a small Flask app with Kubernetes health probes.

`create_app()` builds the WSGI application; `python -m app` serves it under
gunicorn with a drain-aware shutdown (see `app.server`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from app.errors import register_error_handlers
from app.health import health
from app.lifecycle import ShutdownState
from app.settings import AppSettings
from app.views import main, test_routes

__version__ = "1.4.2"

__all__ = ["__version__", "create_app"]


def create_app(
    test_config: dict[str, Any] | None = None,
    *,
    settings: AppSettings | None = None,
    shutdown: ShutdownState | None = None,
) -> Flask:
    """Build the Flask application.

    `settings` defaults to the process environment; `shutdown` is the
    readiness flag shared with the server (a private one when none is given,
    as under Flask's test client).
    """
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["SETTINGS"] = settings or AppSettings.from_env()
    app.config["SHUTDOWN"] = shutdown or ShutdownState()
    if test_config:
        app.config.update(test_config)

    app.register_blueprint(health)
    app.register_blueprint(main)
    if app.config["SETTINGS"].enable_test_routes:
        app.register_blueprint(test_routes)
    register_error_handlers(app)
    return app

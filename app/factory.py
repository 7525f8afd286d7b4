"""The Flask application: the app's routes, with the probes, request IDs, metrics and proxy handling around it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask

from app.errors import register_error_handlers, require_host
from app.forwarded import believe_proxies
from app.probes import Probes, serve_probes_in_front
from app.progress import ProgressTable, WSGIApp
from app.request_id import with_request_ids
from app.settings import AppSettings
from app.shutdown_state import ShutdownState
from app.views import main, test_routes

if TYPE_CHECKING:  # prometheus_client must not be imported before the server sets its directory
    from app.metrics import RequestMetrics


def create_app(
    test_config: dict[str, Any] | None = None,
    *,
    settings: AppSettings | None = None,
    shutdown: ShutdownState | None = None,
    progress: ProgressTable | None = None,
    metrics: RequestMetrics | None = None,
) -> Flask:
    """Build the Flask application, with the probes answered in front of it.

    `settings` defaults to the process environment; `shutdown` is the
    readiness flag shared with the server (a private one when none is given,
    as under Flask's test client). The server also passes the workers'
    `progress` table, which liveness reads and each request updates, and the
    `metrics` each request is recorded in.
    """
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["SETTINGS"] = settings or AppSettings.from_env()
    app.config["SHUTDOWN"] = shutdown or ShutdownState()
    if test_config:
        app.config.update(test_config)

    app.register_blueprint(main)
    if app.config["SETTINGS"].enable_test_routes:
        app.register_blueprint(test_routes)
    register_error_handlers(app)

    wsgi: WSGIApp = app.wsgi_app
    if metrics is not None:
        wsgi = metrics.instrument(app, wsgi)
    if progress is not None:
        wsgi = progress.track(wsgi)
    probes = Probes(app.config["SETTINGS"].version, app.config["SHUTDOWN"], progress)
    wsgi = serve_probes_in_front(wsgi, probes)
    trusted = app.config["SETTINGS"].trusted_proxies
    if trusted:
        # The client's address, scheme and host as the trusted proxies in front report them: the access line
        # shows the client, not the ingress controller.
        wsgi = believe_proxies(wsgi, trusted)
    app.wsgi_app = with_request_ids(require_host(wsgi))  # type: ignore[method-assign,assignment]
    return app

"""The application's own routes."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, jsonify, request

main = Blueprint("main", __name__)
test_routes = Blueprint("test_routes", __name__, url_prefix="/debug")

MAX_SLEEP_SECONDS = 30.0
# Longer than the liveness window of a 1 s stall limit (3 failed probes 10 s apart, after up to one period): a
# wedged thread must stay wedged until the kubelet acts, since every finished request counts as progress.
MAX_BLOCK_SECONDS = 60.0
_RELEASE_NAME = re.compile(r"^[a-z0-9-]{1,64}$")


@main.get("/")
def index() -> Response:
    """Greet, and say whether the database secret is configured (never its value)."""
    settings = current_app.config["SETTINGS"]
    return jsonify(
        message=settings.greeting,
        version=settings.version,
        database_password_configured=settings.database_password_set,
    )


@test_routes.get("/sleep")
def sleep() -> Response:
    """Hold the request open for `seconds`, to put a slow request in flight.

    Mounted only with ENABLE_TEST_ROUTES=true: the shutdown tests and the
    benchmark use it; production Deployments never set it.
    """
    raw = request.args.get("seconds", "1")
    try:
        seconds = float(raw)
    except ValueError:
        abort(400, description=f"The query parameter seconds={raw!r} is not a number.")
    if not 0 <= seconds <= MAX_SLEEP_SECONDS:
        abort(400, description=f"The query parameter seconds must be between 0 and {MAX_SLEEP_SECONDS:g}.")
    time.sleep(seconds)
    return jsonify(slept_seconds=seconds)


@test_routes.get("/block")
def block() -> Response:
    """Hold the request until a file `release-<name>` appears in the server's temporary directory.

    Wedges request threads for exactly as long as a test wants (the stall
    tests create the file to let them go); bounded by MAX_BLOCK_SECONDS.
    Mounted only with ENABLE_TEST_ROUTES=true.
    """
    name = request.args.get("release", "")
    if not _RELEASE_NAME.match(name):
        abort(400, description="The query parameter release must be 1-64 characters of a-z, 0-9 and '-'.")
    release = Path(tempfile.gettempdir()) / f"release-{name}"
    deadline = time.monotonic() + MAX_BLOCK_SECONDS
    while not release.exists():
        if time.monotonic() > deadline:
            abort(408, description=f"Nothing released {release.name} within {MAX_BLOCK_SECONDS:g} s.")
        time.sleep(0.02)
    return jsonify(released=name)

"""Kubernetes probes: liveness at /healthz, readiness at /ready."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

health = Blueprint("health", __name__)


@health.get("/healthz")
def liveness() -> Response:
    """Answer 200 while the process can answer at all; no I/O, no dependencies."""
    return jsonify(status="alive", version=current_app.config["SETTINGS"].version)


@health.get("/ready")
def readiness() -> tuple[Response, int]:
    """Answer 200 until shutdown begins, then 503 so the Service stops routing here."""
    version = current_app.config["SETTINGS"].version
    if current_app.config["SHUTDOWN"].shutting_down:
        return jsonify(status="shutting_down", version=version), 503
    return jsonify(status="ready", version=version), 200

"""Contract tests of every route and error case, with Flask's test client."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import __version__
from app.factory import create_app
from app.settings import AppSettings
from app.shutdown_state import ShutdownState


@pytest.fixture
def shutdown() -> ShutdownState:
    """A fresh readiness flag."""
    return ShutdownState()


@pytest.fixture
def app(shutdown: ShutdownState) -> Flask:
    """The app with known settings and the test-only routes mounted."""
    settings = AppSettings.from_env(
        {"GREETING": "Hi there", "APP_VERSION": "2.0.1", "DATABASE_PASSWORD": "s3cret", "ENABLE_TEST_ROUTES": "true"}
    )
    flask_app = create_app({"TESTING": True, "PROPAGATE_EXCEPTIONS": False}, settings=settings, shutdown=shutdown)

    @flask_app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom: internal detail")

    return flask_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the app."""
    return app.test_client()


def test_healthz_reports_alive_and_version(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "alive", "version": "2.0.1"}


def test_ready_returns_200_before_shutdown(client: FlaskClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "version": "2.0.1"}


def test_ready_returns_503_while_draining(client: FlaskClient, shutdown: ShutdownState) -> None:
    shutdown.begin()
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.get_json() == {"status": "shutting_down", "version": "2.0.1"}


def test_healthz_stays_200_while_draining(client: FlaskClient, shutdown: ShutdownState) -> None:
    shutdown.begin()
    assert client.get("/healthz").status_code == 200


def test_index_greets_and_never_reveals_the_secret(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"message": "Hi there", "version": "2.0.1", "database_password_configured": True}
    assert b"s3cret" not in response.data


def test_version_defaults_to_package_version() -> None:
    client = create_app(settings=AppSettings.from_env({})).test_client()
    assert client.get("/healthz").get_json()["version"] == __version__
    assert client.get("/").get_json()["database_password_configured"] is False


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/no/such/path", 404, "not_found"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("DELETE", "/ready", 405, "method_not_allowed"),
        ("PUT", "/", 405, "method_not_allowed"),
        ("GET", "/debug/sleep?seconds=abc", 400, "bad_request"),
        ("GET", "/debug/sleep?seconds=99", 400, "bad_request"),
    ],
)
def test_errors_are_json(client: FlaskClient, method: str, path: str, status: int, error: str) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.is_json, response.data
    body = response.get_json()
    assert body["error"] == error
    assert body["message"]


def test_method_not_allowed_lists_allowed_methods(client: FlaskClient) -> None:
    response = client.post("/ready")
    assert "GET" in response.headers["Allow"]


def test_unhandled_error_is_json_500_without_traceback(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal_server_error", "message": "The server hit an unexpected error."}
    assert b"kaboom" not in response.data
    assert b"Traceback" not in response.data
    assert any("kaboom" in (r.exc_text or str(r.exc_info)) for r in caplog.records), "traceback must be logged"


def test_sleep_route_is_absent_unless_enabled() -> None:
    client = create_app(settings=AppSettings.from_env({})).test_client()
    assert client.get("/debug/sleep?seconds=0").status_code == 404


def test_sleep_route_sleeps_when_enabled(client: FlaskClient) -> None:
    response = client.get("/debug/sleep?seconds=0")
    assert response.status_code == 200
    assert response.get_json() == {"slept_seconds": 0.0}


def test_block_route_holds_until_released(client: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert client.get("/debug/block?release=../etc").status_code == 400
    (tmp_path / "release-now").touch()
    response = client.get("/debug/block?release=now")
    assert (response.status_code, response.get_json()) == (200, {"released": "now"})
    assert (
        create_app(settings=AppSettings.from_env({})).test_client().get("/debug/block?release=now").status_code == 404
    )

"""The app's settings, read once from the environment.

The Deployment injects them from a ConfigMap (plain values) and a Secret
(`DATABASE_PASSWORD`); README.md lists each variable with its default.
A bad value stops start-up with a message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from app.errors import SettingsError


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number; expected {minimum}..{maximum}.") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={value} is out of range; expected {minimum}..{maximum}.")
    return value


def _strict_boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Exactly `true` or `false`: for switches that must be set on purpose, never by a stray `1` or `yes`."""
    raw = env.get(name)
    if raw is None:
        return default
    if raw in ("true", "false"):
        return raw == "true"
    raise SettingsError(f"{name}={raw!r} is not allowed; expected exactly true or false.")


@dataclass(frozen=True)
class AppSettings:
    """Every environment variable the app reads, parsed and range-checked."""

    greeting: str = "Hello"
    """GREETING: the greeting that `GET /` returns."""
    database_password_set: bool = False
    """Whether the secret DATABASE_PASSWORD is non-empty; the value itself is never kept here."""
    version: str = ""
    """APP_VERSION: the deployed image tag; the package version when unset."""
    port: int = 8080
    """PORT: the TCP port the app's traffic arrives on, on all interfaces."""
    management_port: int = 8081
    """MANAGEMENT_PORT: the port of the probes and /metrics, answered by the master process, never behind requests."""
    workers: int = 2
    """WEB_CONCURRENCY: gunicorn worker processes."""
    threads: int = 4
    """WEB_THREADS: request threads per worker."""
    drain_seconds: int = 5
    """DRAIN_SECONDS: how long the server keeps serving after a shutdown signal, with /ready at 503."""
    graceful_timeout_seconds: int = 20
    """GRACEFUL_TIMEOUT_SECONDS: how long in-flight requests may take to finish after the drain."""
    keepalive_seconds: int = 75
    """KEEPALIVE_SECONDS: how long an idle keep-alive connection stays open; longer than the proxies' 60 s."""
    stall_seconds: int = 30
    """STALL_SECONDS: a worker whose every thread has been busy this long, none finishing, fails liveness."""
    head_timeout_seconds: int = 10
    """HEAD_TIMEOUT_SECONDS: a request head not complete this long after the connection (or its first byte) gets 408."""
    max_requests: int = 0
    """MAX_REQUESTS: restart a worker after this many requests (plus up to 10% jitter); 0 never does."""
    trusted_proxies: int = 0
    """TRUSTED_PROXIES: proxies in front whose X-Forwarded-For/-Proto/-Host are believed (0: none, the default)."""
    log_level: str = "info"
    """LOG_LEVEL: debug, info, warning or error."""
    enable_test_routes: bool = False
    """ENABLE_TEST_ROUTES: mount /debug/sleep and /debug/block, used by the tests and benchmarks only."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        """Parse settings from `env` (the process environment by default)."""
        from app import __version__

        env = os.environ if env is None else env
        log_level = env.get("LOG_LEVEL", "info").strip().lower() or "info"
        if log_level not in {"debug", "info", "warning", "error"}:
            raise SettingsError(f"LOG_LEVEL={log_level!r} is not a level; expected debug, info, warning or error.")
        settings = cls(
            greeting=env.get("GREETING", cls.greeting),
            database_password_set=bool(env.get("DATABASE_PASSWORD", "")),
            version=env.get("APP_VERSION", "").strip() or __version__,
            port=_integer(env, "PORT", cls.port, 1, 65535),
            management_port=_integer(env, "MANAGEMENT_PORT", cls.management_port, 1, 65535),
            workers=_integer(env, "WEB_CONCURRENCY", cls.workers, 1, 64),
            threads=_integer(env, "WEB_THREADS", cls.threads, 1, 256),
            drain_seconds=_integer(env, "DRAIN_SECONDS", cls.drain_seconds, 0, 300),
            graceful_timeout_seconds=_integer(env, "GRACEFUL_TIMEOUT_SECONDS", cls.graceful_timeout_seconds, 1, 600),
            keepalive_seconds=_integer(env, "KEEPALIVE_SECONDS", cls.keepalive_seconds, 1, 3600),
            stall_seconds=_integer(env, "STALL_SECONDS", cls.stall_seconds, 1, 3600),
            head_timeout_seconds=_integer(env, "HEAD_TIMEOUT_SECONDS", cls.head_timeout_seconds, 1, 300),
            max_requests=_integer(env, "MAX_REQUESTS", cls.max_requests, 0, 10_000_000),
            trusted_proxies=_integer(env, "TRUSTED_PROXIES", cls.trusted_proxies, 0, 5),
            log_level=log_level,
            enable_test_routes=_strict_boolean(env, "ENABLE_TEST_ROUTES", cls.enable_test_routes),
        )
        if settings.management_port == settings.port:
            raise SettingsError(
                f"MANAGEMENT_PORT={settings.management_port} is the same as PORT; the probes need a port of their own."
            )
        return settings

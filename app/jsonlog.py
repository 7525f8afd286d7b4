"""One JSON object per log line: info and below on stdout, warnings and errors on stderr.

Structured fields travel in `extra={"fields": {...}}` and become top-level
keys of the line, so log shippers can index them without parsing text.
Access lines, one per request, skip the logging machinery (a LogRecord, the
caller lookup, the formatter chain cost about 45 us a line, a third of a
request): they are rendered by the same `json_line` and written whole under
the handler's lock.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from contextlib import nullcontext
from typing import Any

from gunicorn import glogging

from app.probes import PROBE_PATHS
from app.request_id import ENVIRON_KEY as REQUEST_ID_KEY
from app.request_id import current_request_id

_ENCODER = json.JSONEncoder(default=str)  # built once: json.dumps(..., default=str) rebuilds it per call


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def json_line(created: float, level: str, logger: str, message: str, *, pid: int | None, fields: dict[str, Any]) -> str:
    """The one format of every log line: time (UTC, milliseconds), level, logger, pid, message, then fields."""
    seconds = int(created)
    line: dict[str, Any] = {
        "time": f"{_utc_second(seconds)}.{int((created - seconds) * 1000):03d}+00:00",
        "level": level,
        "logger": logger,
        "pid": pid,
        "message": message,
    }
    line.update(fields)
    return _ENCODER.encode(line)


class JsonFormatter(logging.Formatter):
    """Format a record as a single-line JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        """Render time, level, logger, pid, message, structured fields and any traceback."""
        fields = dict(getattr(record, "fields", {}))
        request_id = current_request_id.get()
        if request_id is not None:
            fields.setdefault("request_id", request_id)
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        return json_line(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            pid=record.process,
            fields=fields,
        )


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def json_handlers() -> list[logging.Handler]:
    """Two handlers: records below WARNING to stdout, the rest to stderr."""
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(_BelowWarning())
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(JsonFormatter())
    return [out, err]


def configure_logging(level: str) -> None:
    """Send the root logger (Flask's app logger propagates to it) through the JSON handlers."""
    root = logging.getLogger()
    root.handlers[:] = json_handlers()
    root.setLevel(level.upper())


def log_lifecycle_event(logger: logging.Logger | glogging.Logger, event: str, message: str, **fields: Any) -> None:
    """Log a server lifecycle event (started, draining, stopping, stopped) as info."""
    logger.info(message, extra={"fields": {"event": event, **fields}})


class GunicornJsonLogger(glogging.Logger):
    """gunicorn's logger, writing its error and access logs as JSON lines."""

    def setup(self, cfg: Any) -> None:
        """Keep gunicorn's level handling, then swap its handlers for the JSON ones."""
        super().setup(cfg)
        self.error_log.handlers[:] = json_handlers()
        access_out = logging.StreamHandler(sys.stdout)
        access_out.setFormatter(JsonFormatter())
        self.access_log.handlers[:] = [access_out]
        # gunicorn logs access at info whatever LOG_LEVEL says; probes go at debug, seen with LOG_LEVEL=debug only.
        self.access_log.setLevel(min(self.loglevel, logging.INFO))

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Log one request: method, path, status and duration in milliseconds; probes at debug only."""
        path = environ.get("PATH_INFO")
        level = logging.DEBUG if path in PROBE_PATHS else logging.INFO
        if self.cfg.accesslog is None or not self.access_log.isEnabledFor(level):
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        fields = {
            "event": "access",
            "method": environ.get("REQUEST_METHOD"),
            "path": path,
            "status": int(status) if status is not None else None,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "request_id": environ.get(REQUEST_ID_KEY),
        }
        name = "debug" if level == logging.DEBUG else "info"
        line = json_line(time.time(), name, self.access_log.name, "request", pid=os.getpid(), fields=fields)
        for handler in self.access_log.handlers:
            if isinstance(handler, logging.StreamHandler):
                with handler.lock or nullcontext():
                    handler.stream.write(line + "\n")
                    handler.stream.flush()

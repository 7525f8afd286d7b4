"""One JSON object per log line: info and below on stdout, warnings and errors on stderr.

Structured fields travel in `extra={"fields": {...}}` and become top-level
keys of the line, so log shippers can index them without parsing text.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from gunicorn import glogging

from app.probes import PROBE_PATHS


class JsonFormatter(logging.Formatter):
    """Format a record as a single-line JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        """Render time, level, logger, pid, message, structured fields and any traceback."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


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


def lifecycle(logger: logging.Logger | glogging.Logger, event: str, message: str, **fields: Any) -> None:
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
        self.access_log.log(
            level,
            "request",
            extra={
                "fields": {
                    "event": "access",
                    "method": environ.get("REQUEST_METHOD"),
                    "path": path,
                    "status": int(status) if status is not None else None,
                    "duration_ms": round(request_time.total_seconds() * 1000, 3),
                    "remote_addr": environ.get("REMOTE_ADDR"),
                }
            },
        )

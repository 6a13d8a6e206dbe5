"""Logs: JSON lines for machines, a readable line when a person watches a terminal; one access line a request.

Each line carries the request id that is echoed in X-Request-ID.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

from flask import Flask, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
WERKZEUG_ACCESS = re.compile(r"^\S+ - - \[")
access_log = logging.getLogger("streampay.access")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        return True


def configure(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    if any(getattr(h, "_streampay", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._streampay = True
    handler.addFilter(RequestIdFilter())
    if sys.stderr.isatty():
        handler.setFormatter(ConsoleFormatter())
    else:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    root.addHandler(handler)
    # The development server's own line per request repeats streampay.access's; its banner stays.
    logging.getLogger("werkzeug").addFilter(_not_werkzeug_access_line)


def _not_werkzeug_access_line(record: logging.LogRecord) -> bool:
    return not WERKZEUG_ACCESS.match(str(record.msg))


class ConsoleFormatter(logging.Formatter):
    """One short line a person can read: time, level, where from, what happened."""

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, "%H:%M:%S")
        if record.name == access_log.name:
            what = f"{record.status} {record.method} {record.path} {record.duration_ms} ms"
        else:
            what = f"{record.name}: {record.getMessage()}"
        line = f"{when} {record.levelname:<7} {what}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def init_app(app: Flask) -> None:
    configure(app.config["LOG_LEVEL"])

    @app.before_request
    def assign_request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def echo_request_id(response):
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - g.started) * 1000, 2),
                },
            )
        return response

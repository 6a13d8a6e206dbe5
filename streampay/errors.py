"""The one JSON error shape: {"code", "status", "error", "message", "errors"?}, for every failure.

`error` is the stable string a program switches on, shared with the WebSocket's `error.code`.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


# The error string of an HTTP status, where no rule named a more precise one.
ERROR_STRINGS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media",
    416: "range_not_satisfiable",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
}


def error_body(code: int, status: str, message: str, errors: dict | None = None, error: str | None = None) -> dict:
    body = {"code": code, "status": status, "error": error or ERROR_STRINGS.get(code, "error"), "message": message}
    if errors:
        body["errors"] = _string_keys(errors)
    return body


def _string_keys(value):
    """JSON keys are strings; a nameless form part (None) or a list index (int) must not break the reply."""
    if isinstance(value, dict):
        return {str(key): _string_keys(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_string_keys(item) for item in value]
    return value


MESSAGES = {
    400: "The request could not be read; see errors.",
    404: "Nothing here: check the path.",
    405: "That method is not allowed here; see the Allow header.",
    413: "The request body is too large.",
    422: "Some fields are missing, unknown or invalid; see errors.",
}


class DomainError(Exception):
    """A rule said no. Services raise these; HTTP, WebSocket and CLI each render them."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors


class Invalid(DomainError):
    status, code = 422, "validation_failed"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


def init_app(app: Flask, api) -> None:
    """The error replies; `api` (flask-smorest's, streampay.openapi.Api) renders an HTTP exception."""

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        return error_body(exc.status, HTTPStatus(exc.status).phrase, exc.message, exc.errors, exc.code), exc.status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return api.handle_http_exception(exc)
        log.exception("unhandled error")
        err = InternalServerError()
        return error_body(500, err.name, "Something went wrong on our side; it has been logged."), 500

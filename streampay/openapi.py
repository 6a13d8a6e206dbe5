"""What the OpenAPI document says about failures: each operation lists the error statuses it can return.

flask-smorest documents what a route declares (its arguments' 422, its reply); the statuses that
come from the rules around it (a token, a path id, a body, a dependency) are added here by rule,
and those only a route's service knows (403, 409, 415, 416, 429) from the table below.
"""

from __future__ import annotations

import threading
from http import HTTPStatus

import flask_smorest
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from streampay.errors import ERROR_STRINGS, MESSAGES, error_body

METHODS = ("get", "post", "put", "patch", "delete")
REQUEST_ID = {
    "description": "The request's id (echoed from the request, or made): quote it when reporting a problem.",
    "schema": {"type": "string"},
}
RETRY_AFTER = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
WHY = {
    403: "signed in, but not allowed (role, owner, deactivated account, no active stream)",
    409: "`conflict`, or a more precise string: `insufficient_funds`, `session_not_active`, `idempotency_key_in_use`",
    422: "`validation_failed` (see `errors`), or `idempotency_key_reused`",
    503: "`unavailable`, `storage_unavailable` or `horizon_unavailable`: retry after a while",
}
PREFIX = "/api/v1"
# Statuses only the route's own rules produce, by (method, path).
RULES: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/auth/register"): (409, 429),
    ("post", "/auth/login"): (401, 403, 429),
    ("post", "/auth/refresh"): (429,),
    ("get", "/users/"): (403,),
    ("get", "/users/{user_id}"): (403,),
    ("patch", "/users/{user_id}"): (403, 409),
    ("patch", "/users/me"): (409,),
    ("post", "/content/"): (403, 409, 415),
    ("patch", "/content/{content_id}"): (403,),
    ("delete", "/content/{content_id}"): (403,),
    ("get", "/content/{content_id}/media"): (403,),
    ("post", "/stellar/auth/challenge"): (429,),
    ("get", "/stellar/accounts/{address}/balances"): (422,),
    ("get", "/stellar/accounts/{address}/transactions"): (422,),
    ("post", "/stellar/auth/verify"): (409, 429),
    ("post", "/stellar/contract/stream"): (409,),
    ("post", "/webhooks"): (403, 409),
    ("post", "/wallet/adjustments"): (403, 404, 409),
    ("post", "/payouts/runs"): (403, 409),
    ("get", "/analytics/creator"): (403, 404),
    ("get", "/analytics/content/{content_id}"): (403,),
    ("get", "/analytics/platform"): (403,),
    ("patch", "/webhooks/{endpoint_id}"): (403,),
    ("post", "/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver"): (409,),
}


class ErrorSchema(Schema):
    """The error shape as the OpenAPI document states it, so clients (and the fuzz tests) can rely on it."""

    code = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    status = fields.String(required=True, metadata={"description": "The HTTP status phrase."})
    error = fields.String(
        required=True,
        metadata={
            "description": "What went wrong, for a program: a stable string such as `insufficient_funds`, "
            "`session_not_active` or `validation_failed` (the list: docs/api.md).",
            "example": "validation_failed",
        },
    )
    message = fields.String(required=True, metadata={"description": "What went wrong, for a person."})
    errors = fields.Dict(metadata={"description": "What was wrong, by location and field."})


class Api(flask_smorest.Api):
    """flask-smorest's Api, keeping the headers an HTTP error carries (Allow, Retry-After), and writing each
    blueprint's part of the document (and the error statuses, `document_errors`) when the document is first read,
    not when the app is built: an app that is never asked for it (a worker's, a command's, most tests') does not
    spend half its build on it."""

    ERROR_SCHEMA = ErrorSchema

    def __init__(self, *args, **kwargs):
        self._undocumented: list[tuple] = []  # (blueprint, name, parameters), registered but not yet in the document
        self._complete, self._writing = True, False
        self._documenting = threading.RLock()
        super().__init__(*args, **kwargs)

    @property
    def spec(self):
        if not self._complete:
            with self._documenting:  # another reader waits for the whole document, not half of it
                if not (self._complete or self._writing):  # (the writing itself reads it: as it is so far)
                    self._writing = True
                    try:
                        self._write_pending()
                    finally:
                        self._writing = False
        return self._spec

    def _write_pending(self) -> None:
        pending, self._undocumented = self._undocumented, []
        for blp, name, parameters in pending:
            blp.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
            self._spec.tag({"name": name, "description": blp.description})
        document_errors(self._spec)
        self._complete = True

    @spec.setter
    def spec(self, value) -> None:
        self._spec = value

    def register_blueprint(self, blp, *, parameters=None, **options):
        """As flask-smorest's, but the blueprint's documentation waits for the document's first reader."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        with self._documenting:
            self._undocumented.append((blp, name, parameters))
            self._complete = False

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        message = data.get("message") or MESSAGES.get(error.code) or error.description or error.name
        if error.code == 429:
            message = f"Too many requests (limit: {error.description}); retry later."
        # werkzeug puts Allow (405) and the limiter puts Retry-After (429) in the exception's headers.
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        headers.update(data.get("headers") or {})
        return error_body(error.code, error.name, message, errors), error.code, headers


def _response_name(code: int) -> str:
    return f"ERROR_{code}"


def _register(spec) -> None:
    for code, error in sorted(ERROR_STRINGS.items()):
        if code < 400:
            continue
        headers = {"X-Request-ID": REQUEST_ID}
        if code in (429, 503):
            headers["Retry-After"] = RETRY_AFTER
        spec.components.response(
            _response_name(code),
            {
                "description": f"{HTTPStatus(code).phrase}: error {WHY.get(code, f'`{error}`')}.",
                "headers": headers,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        )


def _statuses(path: str, method: str, operation: dict) -> set[int]:
    codes = set(RULES.get((method, path.removeprefix(PREFIX)), ()))
    if operation.get("security") != []:
        codes.add(401)
    if "{" in path:
        codes.add(404)
    if "requestBody" in operation:
        codes.update((400, 413, 422))
    if any(p.get("in") in ("query", "header") for p in operation.get("parameters", [])):
        codes.add(422)
    if path != "/healthz":
        codes.add(503)
    return codes


def document_errors(spec) -> None:
    """Add the error statuses (and the headers every reply carries) to each operation of the document."""
    if _response_name(400) not in spec.components.responses:
        _register(spec)
    if "PAGINATION" in spec.components.headers:
        # A JSON object in a header: `content`, not a `schema` (which would mean comma-separated values).
        spec.components.headers["PAGINATION"] = {
            "description": "Where this page is: a JSON object {total, total_pages, first_page, last_page, page, "
            "previous_page?, next_page?}.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PaginationMetadata"}}},
        }
    for path, item in spec._paths.items():  # apispec keeps the paths it will write here
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("default", None)  # every status is listed: a client knows what to expect
            for code in sorted(_statuses(path, method, operation)):
                if str(code) not in responses:
                    responses[str(code)] = spec.components.get_ref("response", _response_name(code))
            for response in responses.values():
                if "$ref" not in response:
                    response.setdefault("headers", {}).setdefault("X-Request-ID", REQUEST_ID)

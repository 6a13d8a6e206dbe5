"""What the app takes from outside before any route sees it: body sizes, and JSON that is safe to use.

Every JSON body (HTTP) and frame (WebSocket) goes through `loads`: it refuses nesting deeper than
MAX_JSON_DEPTH (Python's parser would hit its recursion limit at about 1,000 levels), lone UTF-16
surrogates (which no database or encoder accepts), NaN/Infinity and integers too long to convert.
Bodies other than multipart uploads are capped at MAX_JSON_BYTES; uploads keep MAX_UPLOAD_BYTES.
"""

from __future__ import annotations

import json
import re

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from streampay.errors import DomainError, Invalid, error_body

MAX_JSON_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")
# The escapes \ud800-\udfff as written in JSON text (an escaped backslash before "ud8.." matches too: then the
# parsed value is walked, which tells the two apart).
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPED_SURROGATE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


class NotJSON(DomainError):
    """The bytes are not JSON at all (a 400)."""


class HostileInput(Invalid):
    """Well-formed JSON that nothing downstream can hold safely (a 422)."""


def _no_constant(name: str):
    raise HostileInput(f"{name} is not a number JSON allows.", {"json": [f"{name} is not allowed."]})


def loads(data: str | bytes):
    """json.loads, refusing what would break or exhaust the code behind it."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError as exc:
        raise _too_deep() from exc
    except json.JSONDecodeError as exc:
        raise NotJSON(f"The body is not valid JSON: {exc.msg} at position {exc.pos}.") from exc
    except UnicodeDecodeError as exc:
        raise NotJSON("The body is not valid UTF-8.") from exc
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise HostileInput("A number in the body is too long.", {"json": ["Number too long."]}) from exc
    if _may_be_hostile(data):
        check(value)
    return value


def _may_be_hostile(data: str | bytes) -> bool:
    """Whether the parsed value must be walked, judged from the text in C-speed scans: it cannot nest deeper than
    it has brackets, and a lone surrogate needs a surrogate in the text, raw or escaped. A heartbeat frame is
    cleared here in about a microsecond, where the walk took tens."""
    if isinstance(data, str):
        if _SURROGATE.search(data) or _ESCAPED_SURROGATE.search(data):
            return True
        return data.count("[") + data.count("{") > MAX_JSON_DEPTH
    if not isinstance(data, bytes) or not data.isascii():  # json.loads decodes bytes with surrogatepass
        return True
    return bool(_ESCAPED_SURROGATE_BYTES.search(data)) or data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH


def _too_deep() -> HostileInput:
    return HostileInput(
        f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep.",
        {"json": [f"Nested too deeply (max {MAX_JSON_DEPTH})."]},
    )


def check(value) -> None:
    """Walk a parsed document without recursion: its depth, and every key and string in it."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise HostileInput(
                    "The JSON holds a lone UTF-16 surrogate (such as \\ud800), which is not text.",
                    {"json": ["Lone surrogate in a string."]},
                )
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)


def check_text(value: str, field: str) -> str:
    """For text from elsewhere (a CLI argument): refuse what no database can store."""
    if _SURROGATE.search(value) or "\x00" in value:
        raise Invalid(f"{field} holds characters that are not text.", {field: ["Not valid text."]})
    return value


def _guard_body():
    if request.mimetype == "multipart/form-data":
        return None  # uploads: MAX_CONTENT_LENGTH (MAX_UPLOAD_BYTES)
    limit = min(current_app.config["MAX_JSON_BYTES"], current_app.config["MAX_CONTENT_LENGTH"] or float("inf"))
    request.max_content_length = limit  # also caps a chunked body with no Content-Length as it is read
    if request.content_length is not None and request.content_length > limit:
        too_large = RequestEntityTooLarge()
        too_large.data = {
            "message": f"A request body (other than an upload) is at most {limit} bytes (MAX_JSON_BYTES)."
        }
        raise too_large
    if request.is_json and request.method not in ("GET", "HEAD", "OPTIONS"):
        data = request.get_data(cache=True)
        if data:
            try:
                loads(data)
            except HostileInput as exc:
                return error_body(422, "Unprocessable Entity", exc.message, exc.errors), 422
            except NotJSON:
                return None  # the route's parser answers 400 in its own words
    return None


def init_app(app: Flask) -> None:
    app.before_request(_guard_body)

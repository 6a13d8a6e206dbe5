"""The player's WebSocket protocol as an AsyncAPI 3 document, served at /api/asyncapi.json.

Written from the application's side: it receives the player's frames (and replies), and sends
the pushes. docs/asyncapi.json is this document as a file; a test keeps the two equal and checks
the frames a real session sends against it.
"""

from __future__ import annotations

from flask import Blueprint, current_app

from streampay.streaming.models import PUSHED_REASONS

blp = Blueprint("asyncapi", __name__)
AMOUNT = {"type": "string", "pattern": r"^\d{1,12}\.\d{7}$", "examples": ["12.5000000"]}
ERROR_CODES = [
    "bad_request",
    "validation_failed",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "insufficient_funds",
    "session_not_active",
    "too_large",
    "rate_limited",
    "unavailable",
    "internal",
]


def _obj(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties, "required": required or list(properties)}


DATA = {
    "auth": _obj({"token": {"type": "string", "description": "An access token."}}),
    "authReply": _obj({"user_id": {"type": "string", "format": "uuid"}}),
    "startStream": _obj(
        {"content_id": {"type": "string", "format": "uuid"}, "max_spend": {**AMOUNT, "type": ["string", "null"]}},
        ["content_id"],
    ),
    "startStreamReply": _obj(
        {"session_id": {"type": "string", "format": "uuid"}, "price_per_second": AMOUNT, "balance": AMOUNT}
    ),
    "heartbeat": _obj(
        {
            "session_id": {"type": "string"},
            "position": {"description": "Accepted and ignored: the server's clock bills."},
        },
        ["session_id"],
    ),
    "heartbeatReply": _obj(
        {
            "timestamp": {"type": "integer", "description": "The server's clock, in ms."},
            "billed_seconds": {"type": "integer"},
            "charged": AMOUNT,
            "balance": AMOUNT,
        }
    ),
    "stopStream": _obj({"session_id": {"type": "string"}}),
    "stopStreamReply": _obj(
        {
            "success": {"type": "boolean"},
            "duration": {"type": "integer", "description": "Billed seconds."},
            "charged": AMOUNT,
        }
    ),
    "streamEnded": _obj(
        {
            "session_id": {"type": "string"},
            "reason": {"type": "string", "enum": [r.value for r in PUSHED_REASONS]},
        }
    ),
    "balanceLow": _obj({"session_id": {"type": "string"}, "balance": AMOUNT, "runway_seconds": {"type": "integer"}}),
    "error": _obj(
        {
            "code": {"type": "string", "enum": ERROR_CODES, "description": "The same strings as HTTP's `error`."},
            "message": {"type": "string", "description": "For a person."},
            "errors": {"type": "object", "description": "What was wrong, by field."},
        },
        ["code", "message"],
    ),
}
SUMMARIES = {
    "auth": "Authenticate a socket opened without an Authorization header (browsers).",
    "startStream": "Start a paid session on ready content: money for the first window is held.",
    "heartbeat": "Proof of play, every few seconds: billed time runs to the last heartbeat.",
    "stopStream": "End the session: billed to now, the rest of the hold released.",
    "streamEnded": "The session ended without a stop (timeout, funds, cap, end of media, content gone, sign-out).",
    "balanceLow": "The balance covers less than BALANCE_LOW_SECONDS more of this session.",
    "error": "A frame was refused: bad JSON, unknown event, wrong or ended session, a dependency down.",
}
REQUESTS = ("auth", "startStream", "heartbeat", "stopStream")
PUSHES = ("streamEnded", "balanceLow")


def _message(name: str) -> dict:
    event = name.removesuffix("Reply")
    frame = {
        "type": "object",
        "properties": {
            "event": {"const": event},
            "id": {"description": "Any value; a reply echoes the request's."},
            "data": {"$ref": f"#/components/schemas/{name}"},
        },
        "required": ["event", "data"],
    }
    return {"name": name, "summary": SUMMARIES.get(name, f"The reply to {event}."), "payload": frame}


def document(prefix: str = "/api/v1") -> dict:
    path = f"{prefix}/streaming/ws"
    names = [*REQUESTS, *(f"{r}Reply" for r in REQUESTS), *PUSHES, "error"]

    def ref(name: str) -> dict:
        return {"$ref": f"#/channels/player/messages/{name}"}

    operations = {
        name: {
            "action": "receive",
            "channel": {"$ref": "#/channels/player"},
            "summary": SUMMARIES[name],
            "messages": [ref(name)],
            "reply": {"channel": {"$ref": "#/channels/player"}, "messages": [ref(f"{name}Reply"), ref("error")]},
        }
        for name in REQUESTS
    }
    for name in (*PUSHES, "error"):
        operations[name] = {
            "action": "send",
            "channel": {"$ref": "#/channels/player"},
            "summary": SUMMARIES[name],
            "messages": [ref(name)],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "StreamPay player WebSocket",
            "version": "v1",
            "description": "JSON text frames {event, id?, data}. Authenticate with `Authorization: Bearer` on the "
            "handshake or a first `auth` frame. A frame is at most 4 KiB. See docs/websocket.md.",
        },
        "servers": {
            "app": {
                "host": "localhost:3000",
                "protocol": "ws",
                "description": "wss:// in production.",
                "security": [{"$ref": "#/components/securitySchemes/bearer"}],
            }
        },
        "channels": {
            "player": {
                "address": path,
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
            }
        },
        "operations": operations,
        "components": {
            "messages": {name: _message(name) for name in names},
            "schemas": DATA,
            "securitySchemes": {"bearer": {"type": "httpApiKey", "name": "Authorization", "in": "header"}},
        },
    }


@blp.route("/api/asyncapi.json")
def asyncapi():
    """The WebSocket protocol (AsyncAPI 3)."""
    return document(current_app.config["API_PREFIX"])

"""The WebSocket route's door: a handshake the process cannot serve is refused before Flask builds a request for it.

A saturated dyno refuses hundreds of handshakes a second, and each refusal is CPU its held players wait for. Through
Flask a refusal cost a gevent worker 590–790 µs, 45 % of it Flask's (the request context, the after-request hooks
that add the security headers, the metrics); in front of Flask, 273–299 µs, mostly gunicorn's parsing and writing
(bench/refusals.py).
The first refusal of each kind still goes through Flask, whose hooks (Talisman's) write its headers; the next ones
reuse those headers with their own `Retry-After` and `X-Request-ID`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from streampay import metrics
from streampay.logs import REQUEST_ID

if TYPE_CHECKING:
    from streampay.streaming.ws import Hub

REFUSAL = "streampay.ws_refusal"  # the environ key: (why, Retry-After) of a refusal Flask is asked to write

REFUSALS = {
    "full": "This server holds all the players it can; retry shortly.",
    "slow": "This server runs late already: another player would slow the others; retry shortly.",
    "busy": "Every database connection of this server is in use; retry shortly.",
    "strained": "This server's players already wait for their heartbeats: another would slow them; retry shortly.",
    "saturated": "This server uses all the CPU it gets: another player would slow the others; retry shortly.",
}

# Headers a kept refusal does not repeat: its own, and CORS's (a WebSocket handshake is not subject to CORS, and
# what flask-cors writes depends on the request's Origin).
_NOT_KEPT = ("retry-after", "x-request-id", "vary", "access-control-")


def is_upgrade(environ: dict) -> bool:
    """A WebSocket upgrade request, as werkzeug's routing tells one (its route matches nothing else)."""
    connection = environ.get("HTTP_CONNECTION", "").lower()
    return environ.get("HTTP_UPGRADE", "").lower() == "websocket" and any(
        part.strip() == "upgrade" for part in connection.split(",")
    )


class Gate:
    """WSGI middleware in front of the app: admission for the socket route (`Hub.admit`), and a slot held for as
    long as the request (the socket's whole life) lasts."""

    def __init__(self, wsgi_app: Callable, hub: Hub, path: str):
        self.wsgi_app, self.hub, self.path = wsgi_app, hub, path
        # (why, scheme, X-Forwarded-Proto) -> the status, headers and body Flask wrote for the first such refusal
        self.kept: dict[tuple, tuple[str, list, bytes]] = {}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path or not is_upgrade(environ):
            return self.wsgi_app(environ, start_response)
        with self.hub.app.app_context():  # the rules read the meter's connection and the database's pool
            why = self.hub.admit()
            wait = None if why is None else self.hub.retry_after(why)
        if why is None:
            try:
                return self.wsgi_app(environ, start_response)
            finally:
                self.hub.release()
        metrics.WS_REFUSED.labels(why).inc()
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        own = [("Retry-After", str(wait)), ("X-Request-ID", request_id)]
        proto = environ.get("HTTP_X_FORWARDED_PROTO")
        # Talisman's HSTS depends on the scheme and X-Forwarded-Proto; other values of the header are not kept.
        key = (why, environ.get("wsgi.url_scheme"), proto) if proto in (None, "http", "https") else None
        kept = self.kept.get(key) if key is not None else None
        if kept is None:
            environ[REFUSAL], environ["HTTP_X_REQUEST_ID"] = (why, wait), request_id  # the access log's id too
            return self._through_flask(environ, start_response, key, own)
        status, headers, body = kept
        start_response(status, [*headers, *own])
        return [body]

    def _through_flask(self, environ: dict, start_response: Callable, key: tuple | None, own: list) -> list[bytes]:
        written = {}

        def start(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if not k.lower().startswith(_NOT_KEPT)]
            written.update(status=status, headers=headers)
            return start_response(status, [*headers, *own], exc_info)

        reply = self.wsgi_app(environ, start)
        try:
            body = b"".join(reply)
        finally:
            if hasattr(reply, "close"):
                reply.close()
        if key is not None and written.get("status", "").startswith("503"):
            self.kept[key] = (written["status"], written["headers"], body)
        return [body]

"""A webhook receiver as an integrator writes one: a real HTTP server on loopback that verifies each
delivery with the standardwebhooks library and counts each event once by its id."""

from __future__ import annotations

import json
import threading
from collections import Counter

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class Receiver:
    def __init__(self, answers: list[int] | None = None):
        self.secret: str | None = None
        self.answers = list(answers or [])  # status codes to answer first, then 200
        self.events: dict[str, dict] = {}  # by event id: each counted once
        self.deliveries = Counter()  # attempts per event id, verified or not
        self.rejected: list[str] = []
        self.raw: list[tuple[bytes, dict]] = []  # every request as it came
        self.lock = threading.Lock()
        self.httpd = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hooks"

    def app(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        with self.lock:
            self.raw.append((body, dict(request.headers)))
            try:
                payload = Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError as exc:
                self.rejected.append(str(exc))
                return Response("bad signature", status=400)(environ, start_response)
            event_id = request.headers["webhook-id"]
            self.deliveries[event_id] += 1
            status = self.answers.pop(0) if self.answers else 200
            if 200 <= status < 300:
                self.events.setdefault(event_id, payload)
        return Response(json.dumps({"ok": status < 300}), status=status)(environ, start_response)

    def of_type(self, event_type: str) -> list[dict]:
        return [e for e in self.events.values() if e["type"] == event_type]

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

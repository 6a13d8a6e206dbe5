"""Media bytes as an HTTP reply: from local disk with Range support, else a redirect to a signed URL."""

from __future__ import annotations

from flask import current_app, redirect, send_file

from streampay.content.storage import get_storage
from streampay.errors import NotFound


def send(backend: str, key: str, mimetype: str):
    storage = get_storage(backend)
    path = storage.local_path(key)
    if path is not None:
        # conditional=True answers Range requests: 206 with Content-Range, or 416.
        return send_file(path, mimetype=mimetype, conditional=True, max_age=0)
    url = storage.url(key, expires=current_app.config["MEDIA_URL_TTL"])
    if url is None:
        raise NotFound("The file is not reachable from here.")
    return redirect(url, code=302)

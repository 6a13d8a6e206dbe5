"""The heartbeat benchmark's web app: the real one (wsgi:app) plus a bare WebSocket echo, the benchmark's baseline.

gunicorn serves it as `bench.echo_app:app`; the production app has no echo socket.
"""

from flask import Blueprint

from streampay.streaming.ws import sock
from wsgi import app

echo_bp = Blueprint("bench_echo", __name__)


@sock.route("/streaming/echo", bp=echo_bp)
def echo_socket(ws):
    while True:
        ws.send(ws.receive())


app.register_blueprint(echo_bp, url_prefix=app.config["API_PREFIX"])

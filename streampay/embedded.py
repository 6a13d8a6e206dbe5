"""The embedded default as one system, however many processes of a checkout take part.

The server (`python wsgi.py`, or `flask run`) applies the migrations, serves its in-process Redis
on a loopback port, records that address in `instance/redis.json`, and runs the RQ worker and the
cron scheduler on threads. Every other process of the checkout on the same database (the `flask`
CLI, a second server, gunicorn's workers) finds the record and uses that Redis while the server
runs: what they change shows in the server at once, and a job they queue runs on its worker.
With no server running, a process keeps a Redis of its own, as before.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click
from flask import Flask
from flask.cli import run_command
from flask.helpers import get_debug_flag
from werkzeug.serving import is_running_from_reloader

from streampay.config import database_url
from streampay.extensions import upgrade

log = logging.getLogger(__name__)
RECORD = "redis.json"
CHECKOUT = Path(__file__).resolve().parent.parent


def _database_tag(database_uri: str) -> str:
    # The record names its database by a digest: a PostgreSQL password never lands in instance/.
    return hashlib.sha256(database_uri.encode()).hexdigest()[:16]


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def discover(instance_path: str, database_uri: str) -> str | None:
    """The Redis URL of a running server of this checkout on the same database, or None."""
    try:
        record = json.loads((Path(instance_path) / RECORD).read_text())
    except (OSError, ValueError):
        return None
    url = record.get("url")
    if not url or record.get("database") != _database_tag(database_uri) or not _alive(record.get("pid")):
        return None
    import redis  # only with a record of a server: a lone command does not load the Redis client

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError:
        return None
    return url


def discover_from_environment(env: dict | None = None) -> str | None:
    """`discover` for a process with no app yet (gunicorn's master): paths as create_app makes them."""
    env = dict(os.environ if env is None else env)
    instance_path = env.get("INSTANCE_PATH") or str(CHECKOUT / "instance")
    return discover(instance_path, database_url(env, instance_path))


def share(app: Flask) -> str:
    """Serve this process's in-process Redis on a loopback port and record where, until exit."""
    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", 0))
    server.daemon_threads = True  # a client's connection never keeps the process from exiting
    server.fake_server = app.extensions["streampay.fakeserver"]
    threading.Thread(target=server.serve_forever, name="redis-tcp", daemon=True).start()
    host, port = server.server_address[:2]
    url = f"redis://{host}:{port}/0"
    path = Path(app.instance_path) / RECORD
    record = {"url": url, "pid": os.getpid(), "database": _database_tag(app.config["SQLALCHEMY_DATABASE_URI"])}
    draft = path.with_suffix(f".{os.getpid()}.tmp")
    draft.write_text(json.dumps(record))
    draft.replace(path)
    atexit.register(_forget, path, os.getpid())
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        # Stopped by SIGTERM as by Ctrl-C: exit through atexit, which takes the record away.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("embedded Redis shared with the checkout's other processes at %s", url)
    return url


def _forget(path: Path, pid: int) -> None:
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def prepare_server(app: Flask) -> None:
    """What a server of the embedded default does before it serves: migrate, share Redis, start the threads."""
    from streampay import preload
    from streampay.jobs import start_embedded

    preload()
    with app.app_context():
        upgrade()
    if app.config["REDIS_URL"]:
        return  # production Redis, or a running server's: its worker and cron take the jobs
    share(app)
    start_embedded(app)


def started_by_flask_run() -> bool:
    """True in the process that `flask run` serves from (the reloader's child when it reloads)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command is not run_command:
        return False
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or is_running_from_reloader()

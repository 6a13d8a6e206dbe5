"""The embedded default as one system: a server's Redis is shared with the checkout's other processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from tests.test_procfile import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "analytical-engine-1"  # noqa: S105
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL")),
    reason="the embedded default is what runs with neither DATABASE_URL nor REDIS_URL",
)


@pytest.fixture
def checkout_env(tmp_path) -> dict:
    """The environment of a fresh checkout's processes: the embedded default, its own instance folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_HOST")}
    env.update(
        PATH=f"{BIN}:{env['PATH']}",
        INSTANCE_PATH=str(tmp_path / "instance"),
        LOG_LEVEL="INFO",
        PASSWORD_HASH_TIME_COST="1",
        PASSWORD_HASH_MEMORY_KIB="1024",
    )
    return env


def get(port: int, path: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 (loopback)
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def post(port: int, path: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers)
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 (loopback)
        return json.load(reply)


@contextlib.contextmanager
def server(env: dict, *command: str):
    """A server of the checkout on a free port, once its /readyz answers 200; yields the port and its log."""
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in command]
    # Its output goes to a file: a pipe nobody reads while it runs would fill and stall it.
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**env, "PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log = []

        def ready():
            try:
                return proc.poll() is not None or get(port, "/readyz")[0] == 200
            except OSError:
                return False

        def finish() -> str:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            output.seek(0)
            return output.read().decode(errors="replace")

        try:
            assert wait_for(ready, 60) and proc.poll() is None, finish()
            yield port, log
        finally:
            log.append(finish())


def flask(env: dict, *args: str) -> str:
    done = subprocess.run(["flask", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_cli_beside_a_running_server_acts_in_it_at_once(checkout_env):
    # At DEBUG the embedded worker logs each job it runs (routine lines are quiet at INFO).
    with server({**checkout_env, "LOG_LEVEL": "DEBUG"}, "python", "wsgi.py") as (port, log):
        record = json.loads((Path(checkout_env["INSTANCE_PATH"]) / "redis.json").read_text())
        assert record["url"].startswith("redis://127.0.0.1:")
        assert get(port, "/api/v1/content/")[1] == []  # cached in the server's Redis for anonymous readers

        flask(checkout_env, "seed")

        # The seed's media jobs run on the server's worker, one after another, and its catalogue shows each at once.
        def ready():
            items = [c for c in get(port, "/api/v1/content/")[1] if c["status"] == "ready"]
            return items if len(items) == 3 else None

        assert wait_for(ready, 30)

        flask(checkout_env, "wallet", "credit", "viewer@demo.streampay", "2", "--reason", "welcome")
        login = {"email": "viewer@demo.streampay", "password": "streampay-demo-1"}
        token = post(port, "/api/v1/auth/login", login)["access_token"]
        assert get(port, "/api/v1/wallet", token)[1]["balance"] == "2.0000000"

        # gunicorn's workers use the same Redis: a sign-out on the server shows in every worker.
        web_env = {**checkout_env, "WEB_CONCURRENCY": "2"}
        with server(web_env, "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app") as (web, web_log):
            token = post(web, "/api/v1/auth/login", login)["access_token"]
            post(port, "/api/v1/auth/logout", token=token)
            assert all(get(web, "/api/v1/auth/profile", token)[0] == 401 for _ in range(4))
    assert "using the embedded Redis of the running `python wsgi.py`" in web_log[0]
    assert log[0].count("Job OK (process-media-") == 3
    # The record goes with its server; the CLI then works on its own, as before.
    assert not (Path(checkout_env["INSTANCE_PATH"]) / "redis.json").exists()
    assert len(flask(checkout_env, "content", "list").splitlines()) == 3


def test_flask_run_serves_like_wsgi_and_a_second_server_shares_its_redis(checkout_env):
    with server(checkout_env, "flask", "run", "--port", "{port}") as (first, log):
        # Migrations applied (ready), Redis shared, the worker and the scheduler on threads.
        assert (Path(checkout_env["INSTANCE_PATH"]) / "redis.json").exists()
        with server(checkout_env, "python", "wsgi.py") as (second, _):
            post(second, "/api/v1/auth/register", {"email": "ada@example.com", "username": "ada", "password": PASSWORD})
            tokens = post(first, "/api/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD})
            assert get(second, "/api/v1/auth/profile", tokens["access_token"])[0] == 200
            # Signing out on one server revokes the token on the other at once: one Redis.
            post(second, "/api/v1/auth/logout", token=tokens["access_token"])
            assert get(first, "/api/v1/auth/profile", tokens["access_token"])[0] == 401
    assert "embedded worker and cron scheduler started" in log[0]


def test_gunicorn_without_redis_refuses_in_one_line_when_no_server_runs(checkout_env):
    done = subprocess.run(
        ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env={**checkout_env, "PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "gunicorn needs REDIS_URL, or a running `python wsgi.py` of this checkout whose embedded Redis it shares"
    )

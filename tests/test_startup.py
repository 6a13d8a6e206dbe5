"""A `flask` command builds the app without the libraries only some commands and requests use, nor the routes and
what only requests use, and a server imports them all before it serves (bench/startup.py measures the time;
docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLASK = str(Path(sys.executable).parent / "flask")
HEAVY = ("stellar_sdk", "av", "PIL", "alembic", "flask_migrate", "boto3")
# What only requests use: the routes, sockets, tokens, the OpenAPI document, HTTP clients, RQ (loaded to queue a job).
SERVING = ("streampay.content.routes", "flask_sock", "flask_jwt_extended", "flask_smorest", "requests", "rq")


def checkout_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "INSTANCE_PATH": str(tmp_path / "instance"), "LOG_LEVEL": "WARNING"}


def imported_after(code: str, env: dict, names: tuple = HEAVY) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {names!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()[-1].split()


def test_the_app_is_built_without_the_libraries_of_a_few_commands_and_routes(tmp_path):
    assert imported_after("from streampay import create_app; create_app()", checkout_env(tmp_path)) == []


def test_a_command_is_built_without_the_routes_and_what_only_requests_use(tmp_path):
    env = checkout_env(tmp_path)
    subprocess.run([FLASK, "db", "upgrade"], env=env, cwd=ROOT, capture_output=True, check=True)
    code = "from flask.cli import cli\ntry:\n    cli.main(['ledger', 'check'])\nexcept SystemExit:\n    pass"
    assert imported_after(code, env, HEAVY + SERVING) == []


def test_a_server_imports_them_before_it_serves(tmp_path):
    code = "from streampay import create_app, preload; create_app(); preload()"
    imported = set(imported_after(code, checkout_env(tmp_path), HEAVY + SERVING))
    assert imported >= {"stellar_sdk", "av", "PIL", "alembic", *SERVING}


def test_the_commands_are_listed_and_run_from_a_shell(tmp_path):
    env = checkout_env(tmp_path)
    listing = subprocess.run([FLASK, "--help"], env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name, text in (("ledger", "Check the ledger's invariants."), ("db", "Perform database migrations.")):
        assert any(line.split() == [name, *text.split()] for line in listing.splitlines()), listing
    subprocess.run([FLASK, "db", "upgrade"], env=env, cwd=ROOT, capture_output=True, check=True)
    # The app a command builds has every table: the migrations' head matches it.
    subprocess.run([FLASK, "db", "check"], env=env, cwd=ROOT, capture_output=True, check=True)
    check = subprocess.run([FLASK, "ledger", "check"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.startswith("ledger ok"), check.stdout + check.stderr
    wallet = subprocess.run([FLASK, "wallet", "--help"], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert "Operator credits and debits" in wallet.stdout and "credit" in wallet.stdout

"""The benchmarks' own app modules import against the code as it is (a benchmark fails at start, not at its end)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_heartbeat_benchmarks_echo_app_serves_the_real_app_plus_an_echo_socket(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), LOG_LEVEL="WARNING")
    probe = (
        "from bench.echo_app import app\n"
        "rules = {r.rule for r in app.url_map.iter_rules()}\n"
        "print('/api/v1/streaming/echo' in rules, '/api/v1/streaming/ws' in rules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["True", "True"], done.stdout

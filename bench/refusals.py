"""What a refused WebSocket handshake costs the web dyno's worker: the CPU a storm of refusals takes from held players.

    .venv/bin/python bench/refusals.py [--seconds 8] [--rounds 3] [--clients 16] [--baseline main]

A dyno past what it can serve refuses players with 503 before the upgrade, and refused players come back after their
`Retry-After`: at 20,000 players beside half a core of other work, 300-450 refusals a second went on for minutes, on
the same workers as the held players' heartbeats. This starts the web dyno (gunicorn with `gunicorn.conf.py`, one
gevent worker, `WS_MAX_SOCKETS_PER_WORKER=0` so every handshake is refused as `full`) on a scratch database
(streampay_bench_refusals, migrated) and Redis DB 15, and sends it WebSocket upgrade requests from --clients asyncio
connections in one process, each on a new TCP connection as a refused player's retry is. Per round and version it
prints refusals a second and the worker's CPU (user + system, from /proc) per refusal. --baseline REV runs that
commit's code (git archive) the same way, rounds alternating, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from heartbeats import code_of, cpu_seconds, free_port, web_dyno, workers_of  # noqa: E402

from streampay.sandbox.scratch import add_options, app_env, scratch_database, scratch_redis  # noqa: E402

REQUEST = (
    b"GET /api/v1/streaming/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def _refused_player(port: int, until: float, counts: dict) -> None:
    while time.monotonic() < until:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length"))
            await reader.readexactly(length)
            counts[head.split(b" ", 2)[1].decode()] = counts.get(head.split(b" ", 2)[1].decode(), 0) + 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _storm(port: int, clients: int, seconds: float) -> dict:
    counts: dict = {}
    until = time.monotonic() + seconds
    await asyncio.gather(*(_refused_player(port, until, counts) for _ in range(clients)))
    return counts


@contextlib.contextmanager
def dyno(code: Path, env: dict, log_path: Path):
    """The web dyno of `code` (one worker, by `env`): its port and its worker's pid."""
    port = free_port()
    with web_dyno(env, port, log_path, code=code, app="wsgi:app") as proc:
        (worker,) = workers_of(proc.pid)
        yield port, worker


def measure(port: int, worker: int, clients: int, seconds: float) -> tuple[float, float, dict]:
    asyncio.run(_storm(port, clients, 1.0))  # warm: the first refusal of its kind goes through Flask
    cpu, began = cpu_seconds([worker]), time.monotonic()
    counts = asyncio.run(_storm(port, clients, seconds))
    took, used = time.monotonic() - began, cpu_seconds([worker]) - cpu
    n = sum(counts.values())
    return n / took, used / max(n, 1) * 1e6, counts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8, help="measured per round (8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per version, alternating (3)")
    parser.add_argument("--clients", type=int, default=16, help="refused players at once (16)")
    parser.add_argument("--baseline", help="also measure this commit's code (e.g. main), in the same run")
    add_options(parser, "streampay_bench_refusals", redis_db=15)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # Every handshake refused as `full`, on one worker.
    env = app_env(args.pg, args.db_name, args.redis, WEB_CONCURRENCY="1", WS_MAX_SOCKETS_PER_WORKER="0")
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores", flush=True)
    results: dict[str, list] = {}
    with scratch_database(args.pg, args.db_name), scratch_redis(args.redis), tempfile.TemporaryDirectory() as tmp:
        migrate = [sys.executable, "-m", "flask", "--app", "streampay:create_app", "db", "upgrade"]
        subprocess.run(migrate, cwd=ROOT, env=env, capture_output=True, check=True)
        versions = {"this tree": ROOT}
        if args.baseline:
            versions = {f"baseline {args.baseline}": code_of(args.baseline, Path(tmp) / "baseline"), **versions}
        for round_ in range(1, args.rounds + 1):
            for label, code in versions.items():
                with dyno(code, env, Path(tmp) / "gunicorn.log") as (port, worker):
                    rate, cpu_us, counts = measure(port, worker, args.clients, args.seconds)
                results.setdefault(label, []).append((rate, cpu_us))
                print(
                    f"  round {round_}, {label}: {rate:,.0f} refusals/s, {cpu_us:.0f} us of the worker's CPU each "
                    f"(statuses {counts})",
                    flush=True,
                )
    print(f"\n{'':<28}{'refusals/s':>14}{'CPU us each':>14}{'x baseline':>12}")
    first = None
    for label, rows in results.items():
        rate = sorted(r for r, _ in rows)[len(rows) // 2]
        cpu_us = sorted(c for _, c in rows)[len(rows) // 2]
        first = first or cpu_us
        print(f"{label:<28}{rate:>14,.0f}{cpu_us:>14.0f}{cpu_us / first:>12.2f}")
    print(f"\nthe median of {args.rounds} rounds of {args.seconds:g} s, {args.clients} clients on new connections each")
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

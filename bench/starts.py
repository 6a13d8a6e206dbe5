"""What a WebSocket handshake, a startStream and a settlement cost the web dyno's process: round trips and CPU.

    .venv/bin/python bench/starts.py [--starts 400] [--baseline main]

It creates a scratch database (streampay_bench_starts) and uses Redis DB 13 (flushed at the end; the heartbeat
benchmark's is 14, so the two can run side by side), seeds a creator, one ready item and viewers with the
heartbeat benchmark's seeding, and then measures, in one process per version of the code, each
on viewers of its own:

  handshake    the WebSocket route's before-request hooks (admission, the Authorization header's token check) and
               its teardown, as a player's upgrade request runs them;
  startStream  one `startStream` frame through the socket's frame handler, on a signed-in socket;
  heartbeat    one `heartbeat` frame through the frame handler, on that session (Redis only);
  checkpoint   one checkpoint settlement of that session, as a heartbeat in its window's lead makes it
               (`service.checkpoint` billed to now, the session's database session given back after it);
  stopStream   one `stopStream` frame through the frame handler: the final settlement and the end;

with the web dyno's settings of that version (the environment its gunicorn.conf.py sets: pool, pings).

For each, per operation: PostgreSQL round trips (every wait of libpq for the server, counted by a wait callback
like psycogreen's, so BEGIN, COMMIT, ROLLBACK and the pool's pings count too: each is a yield of a gevent worker),
statements (SQLAlchemy's before_cursor_execute), and the process's CPU (user + system) and wall time. --baseline
REV measures that commit's code too (extracted with git archive) in the same run, under the same machine load,
on the same database, and prints both. The first --warmup operations of each kind are not counted.
Everything is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(os.environ.get("BENCH_CODE") or ROOT)  # the version of the code a measuring process imports
WS = "/api/v1/streaming/ws"
# In this order, each on the one before's socket.
OPERATIONS = ("handshake", "startStream", "heartbeat", "checkpoint", "stopStream")


def measure(content_id: str, tokens: list[str], warmup: int, traced: bool = False) -> dict:
    """In this process: every token's handshake, then every token's startStream."""
    sys.path.insert(0, str(CODE))
    runpy.run_path(str(CODE / "gunicorn.conf.py"))  # the web dyno's settings of this version (its pool, its pings)
    import psycopg2.extensions
    import psycopg2.extras
    from sqlalchemy import event

    from streampay import clock, create_app
    from streampay.extensions import db
    from streampay.streaming import meter, service, ws

    counts = {"round_trips": 0, "statements": 0}
    trace = None  # a list while one operation is traced: its statements, and a mark per round trip

    def waited(conn):  # one call per round trip that waits for the server, as psycogreen's callback is called
        counts["round_trips"] += 1
        if trace is not None:
            trace.append("  round trip")
        psycopg2.extras.wait_select(conn)

    psycopg2.extensions.set_wait_callback(waited)
    app = create_app()

    class Socket:
        def __init__(self):
            self.sent = []

        def send(self, frame):
            self.sent.append(json.loads(frame))

    def handshake(token):
        # An upgrade request: the socket's route matches WebSocket requests only.
        headers = {"Authorization": f"Bearer {token}", "Upgrade": "websocket", "Connection": "Upgrade"}
        with app.test_request_context(WS, headers=headers):
            refused = app.preprocess_request()
            app.do_teardown_request()
        assert refused is None, refused

    def start(player):
        ws.handle(player, json.dumps({"event": "startStream", "id": 1, "data": {"content_id": content_id}}))
        reply = player.ws.sent[-1]
        assert reply["event"] == "startStream", reply
        player.session_id = reply["data"]["session_id"]

    def heartbeat(player):
        frame = {"event": "heartbeat", "id": 3, "data": {"session_id": player.session_id, "position": 5}}
        ws.handle(player, json.dumps(frame))
        reply = player.ws.sent[-1]
        assert reply["event"] == "heartbeat", reply

    def settle(player):  # what a heartbeat in the window's lead does: bill to now, hold the next window
        held_until = service.checkpoint(player.session_id, clock.now_ms() - player.started)
        db.session.remove()
        assert held_until is not None, player.session_id

    def stop(player):
        ws.handle(player, json.dumps({"event": "stopStream", "id": 2, "data": {"session_id": player.session_id}}))
        reply = player.ws.sent[-1]
        assert reply["event"] == "stopStream" and reply["data"]["success"], reply

    out = {}
    with app.app_context():

        @event.listens_for(db.engine, "before_cursor_execute")
        def statement(_conn, _cursor, sql, *_):
            counts["statements"] += 1
            if trace is not None:
                trace.append("statement: " + " ".join(sql.split())[:110])

        players = []
        for token in tokens:
            player = ws.Player(Socket())
            player.authenticate(token)
            db.session.remove()
            players.append(player)
        runs = {
            "handshake": handshake,
            "startStream": start,
            "heartbeat": heartbeat,
            "checkpoint": settle,
            "stopStream": stop,
        }
        for name in OPERATIONS:
            run, subjects = runs[name], tokens if name == "handshake" else players
            if name == "checkpoint":  # where each meter starts, read before the counting: a heartbeat has it
                for player in players:
                    player.started = meter.read(player.session_id)["started"]
            for subject in subjects[:warmup]:
                run(subject)
            counted = subjects[warmup:]
            if traced:
                trace = []
                run(counted.pop())
                print(f"{name}:", *trace, sep="\n", file=sys.stderr)
                trace = None
            before, cpu, wall = dict(counts), time.process_time(), time.perf_counter()
            if os.environ.get("BENCH_PROFILE"):
                import cProfile

                prof = cProfile.Profile(time.process_time)
                prof.runctx("for s in counted: run(s)", globals(), locals())
                prof.dump_stats(f"{os.environ['BENCH_PROFILE']}.{name}")
            else:
                for subject in counted:
                    run(subject)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            n = len(counted)
            out[name] = {
                "n": n,
                "round_trips": (counts["round_trips"] - before["round_trips"]) / n,
                "statements": (counts["statements"] - before["statements"]) / n,
                "cpu_us": cpu / n * 1e6,
                "wall_ms": wall / n * 1e3,
            }
    return out


def _measure_main() -> int:
    job = json.loads(sys.stdin.read())
    print(json.dumps(measure(job["content_id"], job["tokens"], job["warmup"], job["trace"])))
    return 0


def run_version(code: Path, content_id: str, tokens: list[str], warmup: int, env: dict, trace: bool) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure"],
        input=json.dumps({"content_id": content_id, "tokens": tokens, "warmup": warmup, "trace": trace}),
        capture_output=True,
        text=True,
        env={**env, "BENCH_CODE": str(code)},
        cwd=code,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {code} failed:\n{proc.stderr[-3000:]}")
    if trace:
        print(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(results: dict[str, dict]) -> None:
    labels = list(results)
    print(f"\n{'':<34}" + "".join(f"{label:>22}" for label in labels))
    for op in OPERATIONS:
        for key, title, fmt in (
            ("round_trips", "PostgreSQL round trips", "{:.1f}"),
            ("statements", "statements", "{:.1f}"),
            ("cpu_us", "CPU us", "{:.0f}"),
            ("wall_ms", "wall ms", "{:.2f}"),
        ):
            row = f"{op + ' ' + title:<34}"
            print(row + "".join(f"{fmt.format(results[label][op][key]):>22}" for label in labels))
    n = results[labels[0]]["startStream"]["n"]
    print(f"\nper operation, the mean of {n} (each a viewer of its own); CPU: the measuring process's user + system")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=400, help="operations of each kind measured per version (400)")
    parser.add_argument("--warmup", type=int, default=50, help="of each kind, first run and not counted (50)")
    parser.add_argument("--baseline", help="also measure this commit's code (e.g. main), in the same run")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--db-name", default="streampay_bench_starts")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help="print the statements of one operation of each kind")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.measure:
        return _measure_main()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from heartbeats import code_of, seed

    from streampay.sandbox.scratch import app_env, scratch_database, scratch_redis

    env = app_env(
        args.pg,
        args.db_name,
        args.redis,
        MAX_SESSIONS_PER_VIEWER="1",
        HEARTBEAT_TIMEOUT_SECONDS="3600",  # no session times out between its start and its stop, however slow
    )
    os.environ.update(env)
    versions = {f"baseline {args.baseline}": args.baseline} if args.baseline else {}
    versions["this tree"] = None
    per_version = args.warmup + args.starts + args.trace
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores", flush=True)
    results = {}
    with scratch_database(args.pg, args.db_name), scratch_redis(args.redis), tempfile.TemporaryDirectory() as tmp:
        content_id, tokens = seed(per_version * len(versions))
        for n, (label, rev) in enumerate(versions.items()):
            code = ROOT
            if rev is not None:
                code = code_of(rev, Path(tmp) / "baseline")
            mine = tokens[n * per_version : (n + 1) * per_version]
            results[label] = run_version(code, content_id, mine, args.warmup, env, args.trace)
            print(f"  {label}: measured", flush=True)
    report(results)
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

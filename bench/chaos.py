"""Chaos: viewers stream through the Procfile's processes while processes and dependencies are killed under them.

    .venv/bin/python bench/chaos.py [--viewers 100] [--seconds 120]

It makes a scratch database (streampay_bench_chaos, on the server of DATABASE_URL or 127.0.0.1:5432) and a
redis-server of its own on a free port (no persistence), applies the migrations, seeds a creator, one ready item
and --viewers credited viewers (bench/heartbeats.py's seed), signs each in (the auth service, so each token is a
real sign-in), and starts the Procfile's web (2 gevent workers), worker and clock lines on them, with short
intervals (see SETTINGS). Each viewer opens a WebSocket, starts a stream and beats every BEAT seconds; it opens a
new socket when its socket drops (same session) and a new session when the server says its session is over; it
reads its wallet over HTTP every 10 s. Meanwhile the faults are injected, in turn: SIGKILL to a web worker (gunicorn
starts another), SIGKILL to the RQ worker (started again 2 s later, as the platform does), kill -9 of Redis (started
again, empty, 3 s later), pg_terminate_backend on every connection to the scratch database; then Redis once more.
At --seconds, half the viewers stop their stream and half just vanish. One heartbeat timeout and one reaper
interval after that (and after the last fault), it reads PostgreSQL and prints:

  sessions                          how many the viewers started
  faults injected                   each, with when
  money drift (stroops)             sessions' charges vs wallet debits, wallet debits vs earnings + fees
  double postings                   sessions whose postings differ from their charge, or a checkpoint posted twice
  charged past last proof of play   sessions billed beyond the viewer's last proof (its last frame the server
                                    answered, or sent unanswered + 1 s)
  sessions still active             one timeout + one reaper interval after the viewers left and the last fault
  5xx outside outage windows        HTTP 5xx, and WebSocket `internal` errors, outside [fault, fault + grace]
  unbilled watched seconds          play the viewers proved that was not billed (lost with the meter: by design)
  ledger check                      `flask ledger check`'s exit code

Goal: every figure but sessions, faults and unbilled seconds 0. Everything stops and is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the streampay package, and the heartbeat benchmark's seeding

import websockets  # noqa: E402
from heartbeats import seed  # noqa: E402

from streampay.sandbox.faults import Dyno, RedisServer, free_port, terminate_backends, wait_for  # noqa: E402
from streampay.sandbox.scratch import scratch_database  # noqa: E402

DB_NAME = "streampay_bench_chaos"
BEAT = 5.0  # seconds between a viewer's heartbeats (HEARTBEAT_INTERVAL_SECONDS's default)
SETTINGS = {
    "HEARTBEAT_TIMEOUT_SECONDS": "15",
    "REAPER_INTERVAL_SECONDS": "5",
    "STREAM_WINDOW_SECONDS": "15",
    "CHECKPOINT_LEAD_SECONDS": "5",
    "RECONNECT_MAX_SECONDS": "1",
    "WEB_CONCURRENCY": "2",
    "WEB_CONNECTIONS": "2000",
    "RATELIMIT_ENABLED": "false",
    "LOG_LEVEL": "WARNING",
}
GRACE = 10.0  # seconds after a fault that still count as its outage (reconnects, backoff, a new worker's boot)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Played:
    session_id: str
    proof_ms: int = 0  # the viewer's last proof of play the server may have counted


@dataclass
class Record:
    sessions: dict[str, Played] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (when, WebSocket error code)
    http: list[tuple[int, int]] = field(default_factory=list)  # (when, status)
    drops: int = 0


async def call(ws, event: str, data: dict, played: Played | None, ended: set) -> dict:
    frame_id = uuid.uuid4().hex[:8]
    sent = now_ms()
    await ws.send(json.dumps({"event": event, "id": frame_id, "data": data}))
    if played is not None:  # unanswered, it may still have counted on arrival
        played.proof_ms = max(played.proof_ms, sent + 1000)
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if frame.get("event") == "streamEnded" and "id" not in frame:
            ended.add(frame["data"]["session_id"])
        if frame.get("id") == frame_id:
            return frame


async def viewer(index: int, token: str, content_id: str, url: str, until: float, rec: Record) -> None:
    played: Played | None = None
    ended: set[str] = set()
    headers = {"Authorization": f"Bearer {token}"}
    await asyncio.sleep(random.random() * BEAT)
    while time.monotonic() < until:
        try:
            async with websockets.connect(url, additional_headers=headers, open_timeout=10) as ws:
                while time.monotonic() < until:
                    if played is not None and played.session_id in ended:
                        played = None
                    if played is None:
                        reply = await call(ws, "startStream", {"content_id": content_id}, None, ended)
                        if reply["event"] == "startStream":
                            played = Played(reply["data"]["session_id"], now_ms())
                            rec.sessions[played.session_id] = played
                        else:
                            rec.errors.append((now_ms(), reply["data"]["code"]))
                    else:
                        reply = await call(ws, "heartbeat", {"session_id": played.session_id}, played, ended)
                        if reply["event"] == "heartbeat":
                            played.proof_ms = max(played.proof_ms, now_ms())
                        else:
                            rec.errors.append((now_ms(), reply["data"]["code"]))
                            if reply["data"]["code"] == "session_not_active":
                                played = None
                    await asyncio.sleep(BEAT)
                if played is not None and index % 2 == 0:  # half stop; the other half just vanish
                    reply = await call(ws, "stopStream", {"session_id": played.session_id}, played, ended)
                    if reply["event"] == "stopStream":
                        played.proof_ms = max(played.proof_ms, now_ms())
                return
        except (OSError, TimeoutError, websockets.ConnectionClosed, websockets.InvalidStatus):
            rec.drops += 1
            await asyncio.sleep(0.5)


def wallet_status(base: str, token: str) -> int:
    request = urllib.request.Request(f"{base}/api/v1/wallet", headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (loopback)
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0  # no answer at all: a killed worker's connection


async def reader(base: str, token: str, until: float, rec: Record) -> None:
    await asyncio.sleep(random.random() * 10)
    while time.monotonic() < until:
        status = await asyncio.to_thread(wallet_status, base, token)
        rec.http.append((now_ms(), status))  # when it answered: a request sent before an outage may end in it
        await asyncio.sleep(10)


@dataclass
class Fault:
    name: str
    start_ms: int
    end_ms: int


class Faults:
    def __init__(self, web: Dyno, worker: Dyno, redis_server: RedisServer, admin_url: str, db_name: str):
        self.web, self.worker, self.redis, self.admin_url, self.db_name = web, worker, redis_server, admin_url, db_name
        self.done: list[Fault] = []

    async def run(self, seconds: float) -> None:
        plan = [
            (0.15, "SIGKILL a web worker", self.kill_web_worker),
            (0.30, "SIGKILL the RQ worker", self.kill_rq_worker),
            (0.45, "kill -9 Redis (restart empty after 3 s)", self.kill_redis),
            (0.60, "pg_terminate_backend on every app connection", self.kill_pg_backends),
            (0.75, "kill -9 Redis (restart empty after 3 s)", self.kill_redis),
        ]
        began = time.monotonic()
        for at, name, inject in plan:
            await asyncio.sleep(max(0.0, began + at * seconds - time.monotonic()))
            start = now_ms()
            detail = await inject()
            self.done.append(Fault(f"{name}{detail}", start, now_ms()))
            print(f"  {time.monotonic() - began:6.1f} s  {name}{detail}", flush=True)

    async def kill_web_worker(self) -> str:
        workers = self.web.children()
        os.kill(workers[0], signal.SIGKILL)
        return f" (pid {workers[0]})"

    async def kill_rq_worker(self) -> str:
        os.killpg(self.worker.proc.pid, signal.SIGKILL)
        self.worker.proc.wait()
        await asyncio.sleep(2)
        self.worker.start()
        return ""

    async def kill_redis(self) -> str:
        self.redis.kill()
        await asyncio.sleep(3)
        await asyncio.to_thread(self.redis.start)
        return ""

    async def kill_pg_backends(self) -> str:
        killed = await asyncio.to_thread(terminate_backends, self.admin_url, self.db_name)
        return f" ({killed} backends)"

    def in_outage(self, at_ms: int) -> bool:
        return any(f.start_ms <= at_ms <= f.end_ms + GRACE * 1000 for f in self.done)


def sign_in_all(count: int) -> list[str]:
    """An access token per seeded viewer, each a real sign-in through the auth service."""
    from sqlalchemy import select

    from streampay import create_app
    from streampay.auth.tokens import issue_pair
    from streampay.extensions import db
    from streampay.users.models import Role, User

    app = create_app()
    with app.app_context():
        viewers = db.session.scalars(select(User).where(User.role == Role.VIEWER).order_by(User.username)).all()
        tokens = [issue_pair(user)["access_token"] for user in viewers[:count]]
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return tokens


def money(admin_url: str, db_name: str) -> dict:
    import psycopg2

    conn = psycopg2.connect(admin_url.rsplit("/", 1)[0] + f"/{db_name}")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), coalesce(sum(charged), 0) FROM streaming_sessions")
            sessions, charged = (int(x) for x in cur.fetchone())  # sum() of bigints is a numeric
            cur.execute(
                """SELECT a.kind, coalesce(sum(e.amount), 0) FROM ledger_entries e
                   JOIN ledger_transactions t ON t.id = e.transaction_id JOIN ledger_accounts a ON a.id = e.account_id
                   WHERE t.kind = 'charge' GROUP BY a.kind"""
            )
            legs = {kind: int(total) for kind, total in cur.fetchall()}
            cur.execute(
                """SELECT count(*) FROM (
                     SELECT s.id FROM streaming_sessions s
                     LEFT JOIN ledger_transactions t ON t.kind = 'charge' AND t.details->>'session_id' = s.id::text
                     LEFT JOIN ledger_entries e ON e.transaction_id = t.id
                     LEFT JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'viewer_wallet'
                     GROUP BY s.id, s.charged
                     HAVING coalesce(-sum(e.amount) FILTER (WHERE a.id IS NOT NULL), 0) <> s.charged
                   ) wrong"""
            )
            wrong = cur.fetchone()[0]
            cur.execute(
                """SELECT count(*) FROM (SELECT details->>'session_id', details->>'checkpoint' FROM ledger_transactions
                   WHERE kind = 'charge' GROUP BY 1, 2 HAVING count(*) > 1) twice"""
            )
            twice = cur.fetchone()[0]
            cur.execute("SELECT id::text, started_ms, billed_ms FROM streaming_sessions")
            billed = {sid: (started, ms) for sid, started, ms in cur.fetchall()}
            cur.execute("SELECT coalesce(end_reason, status), count(*) FROM streaming_sessions GROUP BY 1 ORDER BY 1")
            reasons = dict(cur.fetchall())
            cur.execute(
                "SELECT (extract(epoch FROM ended_at) * 1000)::bigint FROM streaming_sessions"
                " WHERE end_reason = 'timeout'"
            )
            timeouts = sorted(at for (at,) in cur.fetchall())
            cur.execute("SELECT count(*) FROM streaming_sessions WHERE status = 'active'")
            active = cur.fetchone()[0]
    finally:
        conn.close()
    debits = -legs.get("viewer_wallet", 0)
    credits = legs.get("creator_earnings", 0) + legs.get("platform_fees", 0)
    return {
        "sessions": sessions,
        "charged": charged,
        "debits": debits,
        "credits": credits,
        "drift_charges_vs_debits": charged - debits,
        "drift_debits_vs_credits": debits - credits,
        "double_postings": wrong + twice,
        "billed": billed,
        "active": active,
        "reasons": reasons,
        "timeouts": timeouts,
    }


def report(args, rec: Record, faults: Faults, m: dict, ledger_rc: int, settled_after: float) -> dict:
    overcharged, unbilled_ms = 0, 0
    for sid, played in rec.sessions.items():
        started, billed_ms = m["billed"].get(sid, (None, 0))
        if started is None:
            continue
        # The server's clock and this one are the same machine's.
        if started + billed_ms > played.proof_ms:
            overcharged += 1
        unbilled_ms += max(0, played.proof_ms - 1000 - started - billed_ms)
    fives = [(at, status) for at, status in rec.http if status >= 500 and not faults.in_outage(at)]
    internal = [
        (at, code)
        for at, code in rec.errors
        if code == "internal" or (code == "unavailable" and not faults.in_outage(at))
    ]
    began = min(f.start_ms for f in faults.done) - args.seconds * 150  # the run's start, near enough
    buckets = Counter((at - began) // 5000 * 5 for at in m["timeouts"])
    print(
        "  sessions ended by timeout, by 5 s of the run: " + ", ".join(f"{k}s: {v}" for k, v in sorted(buckets.items()))
    )
    for fault in faults.done:
        print(f"  fault at {(fault.start_ms - began) / 1000:.0f} s ({fault.start_ms}): {fault.name}")
    for at, what in fives + internal:
        print(f"  outside an outage: {what} at {at}")
    figures = {
        "viewers": args.viewers,
        "seconds": args.seconds,
        "sessions": m["sessions"],
        "faults injected": len(faults.done),
        "money drift, charges vs wallet debits (stroops)": m["drift_charges_vs_debits"],
        "money drift, wallet debits vs earnings + fees (stroops)": m["drift_debits_vs_credits"],
        "double postings": m["double_postings"],
        "viewers charged past last proof of play": overcharged,
        f"sessions still active {settled_after:.0f} s after the last fault and the viewers' exit": m["active"],
        "5xx (and WebSocket internal errors) outside outage windows": len(fives) + len(internal),
        "unbilled watched seconds": round(unbilled_ms / 1000, 1),
        "ledger check exit code": ledger_rc,
        "sessions by end": ", ".join(f"{k} {v}" for k, v in m["reasons"].items()),
        "WebSocket errors by code": ", ".join(f"{k} {v}" for k, v in Counter(c for _, c in rec.errors).items()),
        "socket drops (reconnected)": rec.drops,
        "HTTP reads": len(rec.http),
        "charged in all (stroops)": m["charged"],
    }
    print()
    for fault in faults.done:
        print(f"  fault at {time.strftime('%H:%M:%S', time.localtime(fault.start_ms / 1000))}: {fault.name}")
    for name, value in figures.items():
        print(f"  {name:<78} {value}")
    return figures


async def drive(args, base: str, tokens: list[str], content_id: str, faults: Faults) -> Record:
    rec = Record()
    until = time.monotonic() + args.seconds
    url = base.replace("http", "ws") + "/api/v1/streaming/ws"
    tasks = [viewer(i, t, content_id, url, until, rec) for i, t in enumerate(tokens)]
    tasks += [reader(base, t, until, rec) for t in tokens]
    await asyncio.gather(faults.run(args.seconds), *tasks)
    return rec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--db-name", default=DB_NAME, help=f"the scratch database ({DB_NAME})")
    args = parser.parse_args(argv)

    from sqlalchemy import make_url

    server = make_url(os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres")
    admin_url = server.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    db_url = server.set(drivername="postgresql", database=args.db_name).render_as_string(hide_password=False)
    with scratch_database(admin_url, args.db_name), RedisServer() as redis_server:
        env = {"DATABASE_URL": db_url, "REDIS_URL": redis_server.url(), **SETTINGS}
        os.environ.update(env)
        print(f"seeding {args.viewers} viewers ...", flush=True)
        content_id, _ = seed(args.viewers)
        tokens = sign_in_all(args.viewers)
        port = free_port()
        with (
            Dyno("web", PORT=str(port), **env) as web,
            Dyno("worker", **env) as worker,
            Dyno("clock", **env) as clock,
        ):
            base = f"http://127.0.0.1:{port}"
            assert wait_for(lambda: wallet_status(base, tokens[0]) == 200, 60), web.log()
            faults = Faults(web, worker, redis_server, admin_url, args.db_name)
            print(f"{args.viewers} viewers for {args.seconds:.0f} s; faults:", flush=True)
            rec = asyncio.run(drive(args, base, tokens, content_id, faults))
            settle = int(SETTINGS["HEARTBEAT_TIMEOUT_SECONDS"]) + int(SETTINGS["REAPER_INTERVAL_SECONDS"]) + 2
            last = max([f.end_ms for f in faults.done] + [now_ms()])
            time.sleep(max(0.0, (last - now_ms()) / 1000 + settle))
            m = money(admin_url, args.db_name)
            check = subprocess.run(
                [sys.executable, "-m", "flask", "--app", "streampay:create_app", "ledger", "check"],
                cwd=ROOT,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
            )
            figures = report(args, rec, faults, m, check.returncode, settle)
            if check.returncode:
                print(check.stdout + check.stderr)
            for dyno in (web, worker, clock):
                problems = [line for line in dyno.stop().splitlines() if "Traceback" in line]
                print(f"  {dyno.name} log: {len(problems)} tracebacks ({dyno.log_path})")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    goals = [k for k in figures if k.startswith(("money drift", "double", "viewers charged", "sessions still", "5xx"))]
    return 0 if all(figures[k] == 0 for k in goals) and figures["ledger check exit code"] == 0 else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

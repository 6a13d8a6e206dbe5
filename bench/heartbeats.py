"""What a metered heartbeat costs the real web dyno, against a bare WebSocket echo.

    .venv/bin/python bench/heartbeats.py [--players 10000] [--seconds 60] [--interval 5] [--background-cores 0.5]

It creates a scratch database (streampay_bench_hb) and uses Redis DB 14, applies the migrations, inserts a creator,
one ready item at 0.0000100 per second and --players viewers, each credited 10 units through the ledger, mints their
access tokens, and runs two phases, each on a fresh gunicorn (gunicorn.conf.py, gevent, on a free loopback port) so
neither inherits the other's sockets or memory:

  A, echo       --players sockets on /api/v1/streaming/echo send a heartbeat-sized JSON frame every --interval
                seconds and time the echo: the cost of the sockets, greenlets and frames alone;
  B, heartbeat  --players players on /api/v1/streaming/ws (Authorization: Bearer) send startStream, then a heartbeat
                every --interval seconds, then stopStream.

Player i sends at i/N of the interval, so the frames are spread evenly. Sockets open (and streams start) first, at
--ramp per second; the measured window of --seconds begins once all are open and the server has settled, and ends
before any stopStream (streams stop at --ramp per second too), so it holds steady heartbeats only.
HEARTBEAT_TIMEOUT_SECONDS and STREAM_WINDOW_SECONDS are an hour: no session times out or reaches a checkpoint
(PostgreSQL work once per window, by design) during the run, so phase B measures heartbeats and nothing else.

Printed per phase: sessions held (open and answering every frame of the window), messages/s, p50/p99 ack latency, server
CPU per message (gunicorn master and workers, from /proc), the heartbeat/echo CPU ratio, worker RSS per session above
the idle dyno, and PostgreSQL commits and rows written per message (pg_stat_database deltas from the window's start to
11 s after its end, since PostgreSQL reports a backend's work up to 10 s late; heartbeats go on meanwhile, and
autovacuum is off on the scratch tables, so only the app's own work counts). The load generator (asyncio client
processes, their collector off, so that their own pauses do not read as the server's latency) shares the machine's cores
with gunicorn, PostgreSQL and Redis: its CPU and how late it sent are printed too, so a saturated client shows.
--background-cores X burns X cores of CPU in other processes for the whole run (a shared dyno host), and their CPU over
the window is printed. A socket the dyno refuses at the handshake with 503 (past WS_MAX_SOCKETS_PER_WORKER, the
admission cap per worker, which --sockets-per-worker sets; or while its loop runs late or its database connections are
all in use) is tried again after its Retry-After, as a player does, until --open-grace seconds after the ramp
(--no-retry: never); one never admitted is counted as refused, not as a failure, and the 503s are counted by cause:
the goal is that every other player is held at p99 < 100 ms, with no timeout and no `internal` reply (a heartbeat
answered `unavailable` is counted, and the player beats on, as the reference player does). A timeline
prints, for every 10 s from the start of the ramp, the sockets taken, the 503s by cause and the p99 of the heartbeats
the players already in sent meanwhile (`p99 ms while others opened` is that p99 over all of the opening, and the
row under `client send lag p99 ms` the load generator's own lag then: a late client, not a late server). A socket the
dyno sheds with 1013 (a worker whose loop stays late past WS_SHED_LAG_MS) is opened again, as a player does, and
beats the same session on: counted as shed and came back, and not held. --logs keeps gunicorn's logs; --profile runs
py-spy on one worker during each window (every sample, waits included, so a worker blocked in a call that does not yield
shows), which costs CPU and skews that run's figures. Everything stops at the end, also on Ctrl-C, an error or
--time-limit: clients, gunicorn, the database (dropped) and the Redis DB (flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the streampay package is here
ECHO, WS = "/api/v1/streaming/echo", "/api/v1/streaming/ws"
PRICE, CREDIT = 100, 10 * 10_000_000  # stroops: 0.0000100 per second, 10 units per viewer
GOAL_SESSIONS, GOAL_P99_MS, GOAL_RATIO = 10_000, 100.0, 1.3
TIMELINE_STEP = 10  # seconds per line of the admissions' timeline
SUMMED = (
    "held",
    "shed",
    "came_back",
    "sent",
    "acked",
    "acked_for_pg",
    "stopped",
    "latencies",
    "opening_latencies",
    "lags",
    "opening_lags",
)  # per client
SHED_CLOSE = 1013  # a dyno short of CPU lets a socket go with "try again later"; its session goes on
PHASES = (("echo", "A: echo"), ("heartbeat", "B: heartbeat"))
# PostgreSQL 15 flushes a backend's statistics to pg_stat_database up to 10 s after the work (PGSTAT_IDLE_INTERVAL):
# the window starts this long after the last startStream, and its PostgreSQL reading is taken this long after its end.
PG_STATS_LAG = 11.0


class Abort(Exception):
    """SIGTERM or --time-limit: stop everything and clean up."""


def seed(players: int) -> tuple[str, list[str]]:
    """Migrate; a creator, one ready item, `players` credited viewers; returns the item id and their tokens."""
    from flask_jwt_extended import create_access_token
    from sqlalchemy import insert, select, text

    from streampay import create_app
    from streampay.content.models import Content, ContentStatus
    from streampay.extensions import db, upgrade
    from streampay.ledger import service as ledger
    from streampay.ledger.models import Account, AccountKind
    from streampay.users.models import Role, User

    app = create_app()
    with app.app_context():
        upgrade()
        # The scratch tables' only writers must be the app: no autovacuum or autoanalyze in the counts.
        for table in db.session.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all():
            db.session.execute(text(f'ALTER TABLE "{table}" SET (autovacuum_enabled = false)'))
        db.session.commit()
        db.session.execute(text("SET synchronous_commit TO off"))  # this seeding connection only
        now = datetime.now(UTC)

        def user(name: str, role: Role) -> dict:
            return {"id": uuid.uuid4(), "email": f"{name}@bench.example", "username": name, "role": role}

        creator = user("bench-creator", Role.CREATOR)
        viewers = [user(f"viewer{i}", Role.VIEWER) for i in range(players)]
        common = {"password_hash": "!bench: no login", "is_active": True, "created_at": now, "updated_at": now}
        db.session.execute(insert(User), [{**creator, **common}])
        for start in range(0, players, 5000):
            db.session.execute(insert(User), [{**row, **common} for row in viewers[start : start + 5000]])
        item_id = uuid.uuid4()
        db.session.execute(
            insert(Content),
            [
                {
                    "id": item_id,
                    "creator_id": creator["id"],
                    "title": "Heartbeat benchmark",
                    "description": "",
                    "category": "general",
                    "tags": [],
                    "price_per_second": PRICE,
                    "is_published": True,
                    "status": ContentStatus.READY,
                    "status_changed_at": now,
                    "original_filename": "bench.mp4",
                    "media_type": "video/mp4",
                    "size_bytes": 1,
                    "storage_backend": "local",
                    "storage_key": f"bench/{item_id}.mp4",  # never read: nothing plays the bytes
                    "duration_ms": 3_600_000,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        db.session.commit()
        began = time.monotonic()
        source = ledger.platform(AccountKind.ADJUSTMENTS)
        # The wallets made in bulk, as ledger.wallet() would make them one by one (a query and a savepoint each).
        for start in range(0, players, 5000):
            rows = [
                {"kind": AccountKind.VIEWER_WALLET, "user_id": v["id"], "owner": str(v["id"]), "created_at": now}
                for v in viewers[start : start + 5000]
            ]
            db.session.execute(insert(Account), rows)
        wallets = {
            a.user_id: a for a in db.session.scalars(select(Account).where(Account.kind == AccountKind.VIEWER_WALLET))
        }
        for start in range(0, players, 500):  # one balanced posting credits 500 wallets
            chunk = viewers[start : start + 500]
            legs = [ledger.Leg(wallets[v["id"]], CREDIT) for v in chunk]
            legs.append(ledger.Leg(source, -CREDIT * len(chunk)))
            ledger.post(legs, f"bench:credit:{start}", "adjustment", reason="heartbeat benchmark")
            done = start + len(chunk)
            if done % 2000 == 0:
                print(f"  credited {done}/{players} viewers ({time.monotonic() - began:.0f} s)", flush=True)
        expires = timedelta(hours=6)  # outlives any run: an expired token would fail every frame
        tokens = [
            create_access_token(identity=str(v["id"]), additional_claims={"fam": "bench"}, expires_delta=expires)
            for v in viewers
        ]
        db.session.remove()
        db.engine.dispose()
    return str(item_id), tokens


# --- the web dyno ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def web_dyno(env: dict, port: int, log_path: Path, code: Path = ROOT, app: str = "bench.echo_app:app"):
    """gunicorn with the gunicorn.conf.py of `code` (a checkout) on loopback, serving `app` from it, in its own process
    group; stopped on the way out."""
    cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", app]
    env = {**env, "PYTHONPATH": str(code)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, port, log_path)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # gunicorn's quick shutdown: open sockets need no grace
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this Popen created: master and workers
                proc.wait()


def code_of(rev: str, into: Path) -> Path:
    """Commit `rev`'s files (git archive), extracted into the new directory `into`: a baseline to measure beside."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _http_get(port: int, path: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def _wait_ready(proc: subprocess.Popen, port: int, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            if _http_get(port, "/readyz") == 200:
                for _ in range(20):  # reach every worker: imports, database and Redis connections
                    _http_get(port, "/readyz")
                return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready after {timeout:.0f}s:\n{log_path.read_text()[-3000:]}")


# --- readings: /proc and pg_stat_database ---------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def workers_of(master: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(_stat(int(entry))[1]) == master:
                    found.append(int(entry))
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = _stat(pid)
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK


def _status(pid: int) -> dict:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def _fds(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return 0


def idle_workers(master: int, expected: int, timeout: float = 20) -> dict:
    """The workers once all have booted and their memory stopped growing: the idle dyno."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        now = {w: {**_status(w), "fds": _fds(w)} for w in workers_of(master)}
        rss = sum(w.get("VmRSS", 0) for w in now.values())
        if len(now) == expected and last is not None and abs(rss - last) <= 0.002 * rss:
            return now
        if time.monotonic() > deadline:
            print("    warning: the idle dyno's memory did not settle; RSS per session is approximate")
            return now
        last = rss
        time.sleep(1.0)


def machine_busy() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK  # everything but idle and iowait


def pg_counts(conn, name: str) -> dict:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = %s",
            (name,),
        )
        commits, rows = cur.fetchone()
    return {"commits": commits, "rows": rows}


@dataclass
class Snapshot:
    at: float
    server_cpu: float
    client_cpu: float
    background_cpu: float
    busy: float
    pg: dict
    workers: dict  # pid -> {"VmRSS": KiB, "Threads": n, "fds": n}


def snapshot(master: int, clients: list[int], pg, db_name: str, burners: list) -> Snapshot:
    workers = workers_of(master)
    return Snapshot(
        at=time.monotonic(),
        server_cpu=cpu_seconds([master, *workers]),
        client_cpu=cpu_seconds(clients),
        background_cpu=cpu_seconds([b.pid for b in burners]),
        busy=machine_busy(),
        pg=pg_counts(pg, db_name),
        workers={w: {**_status(w), "fds": _fds(w)} for w in workers},
    )


# --- the load generator: asyncio client processes -------------------------------------------------------------------


@dataclass
class Tally:
    opened: int = 0
    refused: int = 0
    refusals: Counter = field(default_factory=Counter)  # 503s at the handshake by cause, tried again or not
    # "second|cause" -> 503s, and "second|admitted" -> sockets taken, by TIMELINE_STEP seconds since the ramp began
    timeline: Counter = field(default_factory=Counter)
    began: float = 0.0
    admitted_after_503: int = 0
    held: int = 0
    shed: int = 0  # sockets the dyno closed with 1013 (try again later) ...
    came_back: int = 0  # ... and opened again, beating the same session on
    sent: int = 0
    acked: int = 0
    acked_for_pg: int = 0
    stopped: int = 0
    latencies: list = field(default_factory=list)
    opening_latencies: list = field(default_factory=list)  # (since the ramp began, ack) of frames before the window
    lags: list = field(default_factory=list)
    opening_lags: list = field(default_factory=list)  # how late the load generator sent, before the window
    slow: Counter = field(default_factory=Counter)  # second of the window (time.time()) -> acks slower than the goal
    failures: Counter = field(default_factory=Counter)


async def _call(ws, event: str, frame_id: int, data: dict, timeout: float) -> dict:
    """Send a frame and return the reply that echoes its id (pushes and stale replies are skipped)."""
    await ws.send(json.dumps({"event": event, "id": frame_id, "data": data}))
    async with asyncio.timeout(timeout):  # cheaper than wait_for: no task per frame
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("id") == frame_id:
                return frame


REFUSED_BECAUSE = {
    "holds all": "full",
    "runs late": "slow",
    "wait for their heartbeats": "strained",
    "all the CPU": "saturated",
    "database connection": "busy",
}


def _step_of(since: float) -> int:
    """The first second of the TIMELINE_STEP that `since` (seconds since the ramp began) falls in."""
    return int(since // TIMELINE_STEP) * TIMELINE_STEP


def _step(tally: Tally) -> str:
    """The timeline's key prefix for now."""
    return f"{_step_of(time.time() - tally.began)}|"


def _timeline(counts: dict, p99s: dict) -> list[str]:
    """One line per TIMELINE_STEP with a socket taken or refused: `0-10 s: taken 1000, strained 12; p99 8.1 ms`,
    the p99 of the held players' heartbeats sent in it."""
    steps: dict[int, dict] = {}
    for key, n in counts.items():
        second, what = key.split("|")
        steps.setdefault(int(second), {})[what] = n
    return [
        f"{s}-{s + TIMELINE_STEP} s: taken {c.pop('admitted', 0)}"
        + "".join(f", {what} {n}" for what, n in sorted(c.items()))
        + (f"; held players' p99 {p99s[s]:.0f} ms" if s in p99s else "")
        for s, c in sorted(steps.items())
    ]


def _p99_by_step(acks: list) -> dict:
    """The p99 (ms) of the acks of frames sent in each TIMELINE_STEP since the ramp began, by its first second."""
    steps: dict[int, list] = {}
    for since, took in acks:
        steps.setdefault(_step_of(since), []).append(took)
    return {step: _pct(took, 0.99) for step, took in sorted(steps.items())}


def _refusal(body: bytes | None) -> str:
    """Why the dyno refused (streampay.streaming.admission.REFUSALS), from the 503's message."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = json.loads(body or b"{}").get("message") or ""
        return next((why for words, why in REFUSED_BECAUSE.items() if words in message), "other")
    return "other"


def _failure(exc: BaseException) -> str:
    return exc.__class__.__name__ if not isinstance(exc, ReplyError) else exc.args[0]


class ReplyError(Exception):
    """The server answered a frame with an error."""


def _checked(reply: dict, event: str) -> dict:
    if reply.get("event") != event:
        raise ReplyError(f"{event}: {(reply.get('data') or {}).get('code', reply.get('event'))}")
    return reply["data"]


async def _open(cfg: dict, token: str | None, open_by: float, gate, tally: Tally, resume: str | None = None):
    """Open the socket and start the stream as a player does: a 503 before the upgrade (the dyno refuses what it
    cannot serve) is tried again after its Retry-After, with jitter, until `open_by`; then it counts as refused.
    Returns the socket and the session id (for the echo, a made-up one: its frames carry a heartbeat's fields).
    With `resume` (a session whose socket was shed), the session goes on: no startStream."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    headers = {"Authorization": f"Bearer {token}"} if token else None
    refusals = 0
    while True:
        async with gate:  # opens in flight; a refused player waits for its retry outside
            try:
                ws = await connect(
                    cfg["url"],
                    additional_headers=headers,
                    compression=cfg["compression"],
                    proxy=None,
                    ping_interval=None,  # as a browser: it answers the server's pings, sends none
                    open_timeout=3 * cfg["ack_timeout"],
                )
            except InvalidStatus as exc:
                if exc.response.status_code != 503:
                    raise
                refusals += 1
                tally.refusals[cause := _refusal(exc.response.body)] += 1
                tally.timeline[_step(tally) + cause] += 1
                wait = float(exc.response.headers.get("Retry-After") or 5) * (1 + random.random())
                if not cfg["retry"] or time.time() + wait > open_by:
                    raise
            else:
                tally.admitted_after_503 += refusals > 0
                tally.timeline[_step(tally) + "admitted"] += 1
                session_id = resume or str(uuid.uuid4())
                try:
                    if cfg["phase"] == "heartbeat" and resume is None:
                        reply = await _call(
                            ws, "startStream", 0, {"content_id": cfg["content_id"]}, 3 * cfg["ack_timeout"]
                        )
                        session_id = _checked(reply, "startStream")["session_id"]
                except BaseException:
                    await ws.close()
                    raise
                return ws, session_id
        await asyncio.sleep(wait)


async def _player(
    cfg: dict, index: int, token: str | None, open_at: float, open_by: float, gate, window, stop, tally, progress
):
    from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

    errors = (OSError, TimeoutError, WebSocketException, ReplyError, ValueError, KeyError)
    interval, timeout = cfg["interval"], cfg["ack_timeout"]
    await asyncio.sleep(max(0.0, open_at - time.time()))
    try:
        ws, session_id = await _open(cfg, token, open_by, gate, tally)
        tally.opened += 1
    except InvalidStatus as exc:
        if exc.response.status_code == 503:  # refused before the upgrade, every time: the dyno is full, by design
            tally.refused += 1
        else:
            tally.failures[f"open: HTTP {exc.response.status_code}"] += 1
        return
    except errors as exc:
        tally.failures[f"open: {_failure(exc)}"] += 1
        return
    finally:
        progress(index)
    frame_id, window_sent, window_acked, broken_at = 0, 0, 0, None
    slot = cfg["epoch"] + interval * index / cfg["players"]
    try:
        while True:
            now = time.time()
            if slot < now - interval:  # fell a whole interval behind: skip to the next slot, as a player would
                slot += interval * math.floor((now - slot) / interval)
            await asyncio.sleep(max(0.0, slot - now))
            if stop.is_set() and slot >= window[3] + index / cfg["ramp"]:
                break  # stopStream takes this slot: streams stop at the rate they started, in the same order
            frame_id += 1
            sent = time.time()
            counted = window[0] <= sent < window[1]
            began = time.perf_counter()
            data = {"session_id": session_id, "position": frame_id * interval}
            if counted:
                window_sent += 1
                tally.sent += 1
                tally.lags.append(sent - slot)
            elif sent < window[0] and frame_id > 1:  # a first frame goes at once, its slot up to an interval past
                tally.opening_lags.append(sent - slot)
            try:
                reply = await _call(ws, "heartbeat", frame_id, data, timeout)
            except ConnectionClosed as exc:
                if exc.rcvd is None or exc.rcvd.code != SHED_CLOSE:
                    raise
                # Shed by a dyno short of CPU: come back at the next beat, as the reference player does (so the
                # shed players of one moment return spread over an interval, not at once), and beat the same
                # session on. This frame went unanswered: a player shed in the window is not held.
                tally.shed += 1
                await asyncio.sleep(random.uniform(0, interval))
                ws, _ = await _open(cfg, token, time.time() + 60, gate, tally, resume=session_id)
                tally.came_back += 1
                slot += interval
                continue
            if reply.get("event") == "error" and (reply.get("data") or {}).get("code") == "unavailable":
                # The reference player shows the message and beats on (the next beat bills as if nothing happened):
                # so does this one. The frame went unanswered: a player with one in the window is not held.
                tally.failures["heartbeat: heartbeat: unavailable"] += 1
                slot += interval
                continue
            _checked(reply, "heartbeat")
            tally.acked_for_pg += window[0] <= sent < window[2]
            if counted:
                window_acked += 1
                tally.acked += 1
                tally.latencies.append(took := time.perf_counter() - began)
                if took * 1000 >= GOAL_P99_MS:
                    tally.slow[int(sent)] += 1
            elif sent < window[0]:  # while the others open: what admission keeps the held ones to
                tally.opening_latencies.append((sent - tally.began, time.perf_counter() - began))
            slot += interval
    except errors as exc:
        broken_at = time.time()
        tally.failures[f"heartbeat: {_failure(exc)}"] += 1
    if window_sent and window_acked == window_sent and (broken_at is None or broken_at >= window[1]):
        tally.held += 1
    try:
        if broken_at is None and cfg["phase"] == "heartbeat":
            _checked(await _call(ws, "stopStream", frame_id + 1, {"session_id": session_id}, 3 * timeout), "stopStream")
            tally.stopped += 1
        await ws.close()
    except errors as exc:
        tally.failures[f"stop: {_failure(exc)}"] += 1


async def _client_main(cfg: dict, players: list, pipe) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: inbox.put_nowait(pipe.recv()))
    os.set_blocking(pipe.fileno(), True)  # uvloop made it non-blocking: a long tally would fail to send
    tally, stop, window = Tally(), asyncio.Event(), [math.inf] * 4
    gate = asyncio.Semaphore(cfg["in_flight"])
    all_open, opening = asyncio.Event(), {index for index, _ in players}

    def progress(index: int) -> None:
        opening.discard(index)
        if not opening:
            all_open.set()

    rate, t0 = cfg["ramp"] / cfg["procs"], time.time()
    tally.began = t0
    open_by = t0 + len(players) / rate + cfg["open_grace"]  # the last try leaves the last open its 3 * ack_timeout
    tasks = {
        index: asyncio.create_task(
            _player(cfg, index, token, t0 + k / rate, open_by, gate, window, stop, tally, progress)
        )
        for k, (index, token) in enumerate(players)
    }
    if not players:
        all_open.set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(len(players) / rate + 3 * cfg["ack_timeout"] + cfg["open_grace"]):
            await all_open.wait()
    if opening:  # an overloaded server: give up on the stragglers rather than wait without end
        tally.failures["open: not open by the deadline"] += len(opening)
        for index in list(opening):
            tasks[index].cancel()
    pipe.send(("ready", tally.opened, tally.refused, dict(tally.failures)))
    while (message := await inbox.get())[0] != "stop":
        window[:3] = message[1:]  # ("window", start, end, end of the PostgreSQL reading) in time.time()
    window[3] = message[1]  # ("stop", when the first player stops)
    stop.set()
    await asyncio.wait(tasks.values(), timeout=cfg["players"] / cfg["ramp"] + cfg["interval"] + 6 * cfg["ack_timeout"])
    tally.failures["unfinished at stop"] += sum(1 for t in tasks.values() if not t.done())
    counters = {name: dict(getattr(tally, name)) for name in ("failures", "refusals", "timeline")}
    pipe.send(("done", {**tally.__dict__, **counters}))


def client_process(cfg: dict, players: list, pipe) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its clients itself
    # No collection runs in the client: a pause of its own (a full collection of 10,000 sockets' objects is a
    # second, and of what the refused tries left in cycles, several) would read as the server's latency. What those
    # cycles hold, a few hundred MB at 20,000 players, is freed when the process ends.
    gc.disable()
    try:
        if cfg["uvloop"]:
            import uvloop

            uvloop.run(_client_main(cfg, players, pipe))
        else:
            asyncio.run(_client_main(cfg, players, pipe))
    except Exception as exc:  # reported to the parent rather than lost in a child's stderr
        pipe.send(("crashed", repr(exc)))


def _expect(pipes: list, kind: str, timeout: float) -> list:
    """One `kind` message from every client process, or an error naming what came instead."""
    deadline, out = time.monotonic() + timeout, []
    for pipe in pipes:
        if not pipe.poll(max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"a client process sent no {kind!r} within {timeout:.0f} s")
        message = pipe.recv()
        if message[0] != kind:
            raise RuntimeError(f"a client process sent {message!r} instead of {kind!r}")
        out.append(message[1:])
    return out


# --- background load: a shared host's other tenants ----------------------------------------------------------------


def _burn(share: float, stop_at: float) -> None:
    """Spend `share` of every 10 ms of wall time on the CPU (process time, so a busy machine still gets the full
    share asked of it when it can), asleep for the rest, until `stop_at`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    period = 0.01
    while time.time() < stop_at:
        began, spent = time.monotonic(), time.process_time()
        while time.process_time() - spent < share * period:
            pass
        time.sleep(max(0.0, period - (time.monotonic() - began)))


@contextlib.contextmanager
def background_load(cores: float, seconds: float):
    """ceil(cores) processes burning `cores` cores between them; stopped on the way out."""
    procs = []
    if cores > 0:
        n = math.ceil(cores)
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_burn, args=(cores / n, time.time() + seconds), daemon=True) for _ in range(n)]
        for proc in procs:
            proc.start()
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.join()


# --- one phase ------------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    players: int
    seconds: float = 0.0
    opened: int = 0
    refused: int = 0
    refusals: Counter = field(default_factory=Counter)
    timeline: Counter = field(default_factory=Counter)
    admitted_after_503: int = 0
    held: int = 0
    shed: int = 0
    came_back: int = 0
    sent: int = 0
    acked: int = 0
    acked_for_pg: int = 0
    stopped: int = 0
    latencies: list = field(default_factory=list)
    opening_latencies: list = field(default_factory=list)
    lags: list = field(default_factory=list)
    opening_lags: list = field(default_factory=list)
    slow: Counter = field(default_factory=Counter)
    collections: list = field(default_factory=list)  # (generation, ms) of the workers' logged pauses in the window
    failures: Counter = field(default_factory=Counter)
    idle: dict = field(default_factory=dict)
    before: Snapshot | None = None
    after: Snapshot | None = None
    pg_after: dict = field(default_factory=dict)
    respawned: bool = False
    profile: Path | None = None


@contextlib.contextmanager
def client_processes(name: str, args, port: int, tokens: list, content_id: str):
    """The load generator: --client-procs processes, player i in process i mod procs; stopped on the way out."""
    cfg = {
        "phase": name,
        "url": f"ws://127.0.0.1:{port}{ECHO if name == 'echo' else WS}",
        "content_id": content_id,
        "players": args.players,
        "interval": args.interval,
        "ack_timeout": args.ack_timeout,
        "compression": None if args.no_deflate else "deflate",
        "ramp": args.ramp,
        "procs": args.client_procs,
        "in_flight": args.in_flight,
        "epoch": time.time() + 2.0,
        "retry": not args.no_retry,
        "open_grace": args.open_grace,
        "uvloop": not args.asyncio_loop,
    }
    ctx = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    try:
        for p in range(args.client_procs):
            mine = [(i, tokens[i] if name == "heartbeat" else None) for i in range(p, args.players, args.client_procs)]
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_process, args=(cfg, mine, child), daemon=True)
            proc.start()
            child.close()
            procs.append(proc)
            pipes.append(parent)
        yield procs, pipes
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def run_phase(name: str, args, env: dict, tokens: list, content_id: str, pg, workdir: Path, burners: list) -> Phase:
    port, result, ramp_seconds = free_port(), Phase(name, args.players), args.players / args.ramp
    with web_dyno(env, port, workdir / f"gunicorn-{name}.log") as dyno:
        result.idle = idle_workers(dyno.pid, args.workers)
        spy = _start_profile(args, name, dyno.pid, workdir)
        with client_processes(name, args, port, tokens, content_id) as (procs, pipes):
            opening = Counter()
            opens_end = ramp_seconds + args.open_grace + 3 * args.ack_timeout  # the clients' own deadline
            for opened, refused, failures in _expect(pipes, "ready", opens_end + 60):
                result.opened += opened
                result.refused += refused
                opening.update(failures)
            print(
                f"    {result.opened}/{args.players} open, {result.refused} refused with 503 at the handshake "
                f"({dict(opening) or 'no failures'})",
                flush=True,
            )
            start = time.time() + max(PG_STATS_LAG, args.interval)  # steady heartbeats only from here on
            end = start + args.seconds
            for pipe in pipes:
                pipe.send(("window", start, end, end + PG_STATS_LAG))
            time.sleep(max(0.0, start - time.time()))
            result.before = snapshot(dyno.pid, [p.pid for p in procs], pg, args.db_name, burners)
            time.sleep(max(0.0, end - time.time()))
            result.after = snapshot(dyno.pid, [p.pid for p in procs], pg, args.db_name, burners)
            result.profile = _finish_profile(spy) if spy else None
            result.seconds = result.after.at - result.before.at
            result.respawned = set(result.after.workers) != set(result.idle)
            print(f"    window of {result.seconds:.1f} s done; {PG_STATS_LAG:g} s more for PostgreSQL's statistics")
            time.sleep(max(0.0, end + PG_STATS_LAG - time.time()))
            result.pg_after = pg_counts(pg, args.db_name)
            print("    stopping players", flush=True)
            for pipe in pipes:
                pipe.send(("stop", time.time()))
            for (tally,) in _expect(pipes, "done", ramp_seconds + args.interval + 6 * args.ack_timeout + 30):
                for key in SUMMED:
                    setattr(result, key, getattr(result, key) + tally[key])
                result.admitted_after_503 += tally["admitted_after_503"]
                result.slow.update(tally["slow"])
                result.refusals.update(tally["refusals"])
                result.timeline.update(tally["timeline"])
                result.failures.update({k: v for k, v in tally["failures"].items() if v})
    result.collections = collection_pauses(workdir / f"gunicorn-{name}.log", start, end)
    if result.failures:
        print(f"    failures: {dict(result.failures)}; gunicorn's log says:", flush=True)
        for line, n in log_problems(workdir / f"gunicorn-{name}.log").most_common(8):
            print(f"      {n} x {line}")
    return result


def collection_pauses(path: Path, start: float, end: float) -> list[tuple[int, int]]:
    """The workers' warnings of a garbage collection that stopped them (gunicorn.conf.py), logged in [start, end]:
    (generation, milliseconds) each."""
    found = []
    pause = re.compile(r"^\[([^]]+)\].*a garbage collection of generation (\d) stopped this worker for (\d+) ms")
    # Only the pauses of the goal's size: WEB_GC_WARN_MS may log shorter ones.
    for line in path.read_text(errors="replace").splitlines():
        if (m := pause.match(line)) and start - 1 <= datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S %z").timestamp() < end:
            if int(m[3]) > GOAL_P99_MS:
                found.append((int(m[2]), int(m[3])))
    return found


def log_problems(path: Path) -> Counter:
    """Warnings and errors in gunicorn's log, by message and the last line of their traceback."""
    found = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "[ERROR]" in line or "[CRITICAL]" in line or "[WARNING]" in line:
                found[line.split("] ", 2)[-1][:200]] += 1
            continue
        if isinstance(record, dict) and record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            cause = (record.get("exc_info") or "").strip().splitlines()[-1:] or [""]
            found[f"{record.get('logger')}: {record.get('message')} {cause[0]}"[:200]] += 1
    return found


# --- profile (optional, py-spy) -------------------------------------------------------------------------------------


def _start_profile(args, name: str, master: int, workdir: Path):
    """From the first open to the window's end, stopped by SIGINT: opens, starts and steady frames."""
    if not args.profile:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = args.profile / f"{name}.txt"
    args.profile.mkdir(parents=True, exist_ok=True)
    cmd = [spy, "record", "--pid", str(workers_of(master)[0]), "--duration", "3600", "--rate", "50"]
    # --idle: every sample of the worker's one thread, also while it waits, so a worker stopped in a blocking call
    # (a database round trip that does not yield to the other greenlets) shows, beside the loop's own idle time.
    cmd += ["--idle", "--format", "raw", "--nonblocking", "--output", str(out)]
    log = open(workdir / f"py-spy-{name}.log", "wb")  # closed by _finish_profile
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), out, log


def _finish_profile(spy) -> Path | None:
    proc, out, log = spy
    proc.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    return out if out.exists() else None


# Where a gevent worker's one thread can be while it is not running Python of its own: blocked in a call that does
# not yield (every other socket of the worker waits), or in the loop's poll (idle, or between callbacks).
BLOCKED_IN = {
    "inside a PostgreSQL call (the whole worker waits, unless the wait callback yields)": (
        "do_execute (",
        "do_commit (",
        "do_rollback (",
        "do_ping (",
        "connect (psycopg2",
    ),
    "inside a Redis socket read": ("_read_from_socket (",),
}


def profile_summary(path: Path, top: int = 12) -> list[str]:
    """Where one worker's thread was: blocked (and in what), in the event loop, or running; then the busiest
    functions of the samples that ran Python, own time and with callees."""
    own, total, where, samples = Counter(), Counter(), Counter(), 0
    loop = ("Hub.run (", "EpollSelector.select (", "GeventSelector.select (")
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.split(":")[0] + ")" if ":" in f else f for f in stack.split(";")]  # drop line numbers
        n = int(count)
        samples += n
        leaf = frames[-1]
        name, _, where_from = leaf.partition(" (")
        function = f"{name.rsplit('.', 1)[-1]} ({where_from}"  # "DefaultDialect.do_execute (" is "do_execute ("
        blocked = next((name for name, marks in BLOCKED_IN.items() if function.startswith(marks)), None)
        if blocked:
            where[blocked] += n
            continue
        if leaf.startswith(loop):
            where["the event loop (polling, idle or between callbacks)"] += n
            continue
        where["running Python"] += n
        own[leaf] += n
        for f in set(frames):
            total[f] += n
    if not samples:
        return ["  no samples"]
    lines = [f"  {samples} samples of the worker's thread; where it was:"]
    lines += [f"    {n / samples:6.1%}  {what}" for what, n in where.most_common()]
    lines += ["  running Python, own time:"]
    lines += [f"    {n / samples:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["  running Python, with callees:"]
    lines += [f"    {n / samples:6.1%}  {f}" for f, n in total.most_common(2 * top)]
    return lines


# --- report ---------------------------------------------------------------------------------------------------------


def _pct(values: list, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else math.nan


def figures(p: Phase) -> dict:
    b, a = p.before, p.after
    cpu = math.nan if p.respawned else a.server_cpu - b.server_cpu  # a killed worker's CPU is lost
    rss_idle = sum(w.get("VmRSS", 0) for w in p.idle.values())
    rss_end = sum(w.get("VmRSS", 0) for w in a.workers.values())
    pg_commits, pg_rows = p.pg_after["commits"] - b.pg["commits"], p.pg_after["rows"] - b.pg["rows"]
    return {
        "sessions_held": p.held,
        "players": p.players,
        "refused": p.refused,
        "refusals": dict(p.refusals),
        "timeline": dict(p.timeline),
        "admitted_after_503": p.admitted_after_503,
        "shed": p.shed,
        "came_back": p.came_back,
        "messages_per_s": p.acked / p.seconds,
        "p50_ms": _pct(p.latencies, 0.50),
        "p99_ms": _pct(p.latencies, 0.99),
        "opening_p99_ms": _pct([took for _, took in p.opening_latencies], 0.99),
        "opening_p99_by_step": _p99_by_step(p.opening_latencies),
        "max_ms": _pct(p.latencies, 1.0),
        "cpu_us_per_message": cpu / p.acked * 1e6 if p.acked else math.nan,
        "server_cores": cpu / p.seconds,
        "client_cores": (a.client_cpu - b.client_cpu) / p.seconds,
        "background_cores": (a.background_cpu - b.background_cpu) / p.seconds,
        "machine_cores": (a.busy - b.busy) / p.seconds,
        "rss_kib_per_session": (rss_end - rss_idle) / p.held if p.held else math.nan,
        "worker_rss_mib": rss_end / 1024,
        "worker_threads": [w.get("Threads", 0) for w in a.workers.values()],
        "worker_fds": [w["fds"] for w in a.workers.values()],
        "pg_commits_per_message": pg_commits / p.acked_for_pg if p.acked_for_pg else math.nan,
        "pg_rows_per_message": pg_rows / p.acked_for_pg if p.acked_for_pg else math.nan,
        "pg_commits": pg_commits,
        "pg_rows": pg_rows,
        "client_lag_p99_ms": _pct(p.lags, 0.99),
        "opening_client_lag_p99_ms": _pct(p.opening_lags, 0.99),
        "slow_seconds": len(p.slow),
        "slow_worst_second": max(p.slow.values(), default=0),
        "slow_worst_at": time.strftime("%H:%M:%S", time.gmtime(max(p.slow, key=p.slow.get))) if p.slow else "",
        "collections_over_100ms": p.collections,
        "unanswered": p.sent - p.acked,
        "stopped": p.stopped,
        "failures": dict(p.failures),
        "workers_respawned": p.respawned,
    }


ROWS = (
    ("sessions held", lambda f: f"{f['sessions_held']}/{f['players']}"),
    ("refused with 503 (handshake)", lambda f: str(f["refused"])),
    ("503s / admitted on a retry", lambda f: f"{sum(f['refusals'].values())} / {f['admitted_after_503']}"),
    ("shed with 1013 / came back", lambda f: f"{f['shed']} / {f['came_back']}"),
    ("messages/s (acked)", lambda f: f"{f['messages_per_s']:.0f}"),
    ("ack latency p50 ms", lambda f: f"{f['p50_ms']:.1f}"),
    ("ack latency p99 ms", lambda f: f"{f['p99_ms']:.1f}"),
    ("p99 ms while others opened", lambda f: f"{f['opening_p99_ms']:.1f}"),
    ("ack latency max ms", lambda f: f"{f['max_ms']:.0f}"),
    ("server CPU per message us", lambda f: f"{f['cpu_us_per_message']:.0f}"),
    ("server cores (gunicorn)", lambda f: f"{f['server_cores']:.2f}"),
    ("worker RSS per session KiB", lambda f: f"{f['rss_kib_per_session']:.0f}"),
    ("worker RSS total MiB", lambda f: f"{f['worker_rss_mib']:.0f}"),
    ("worker threads", lambda f: "+".join(str(t) for t in f["worker_threads"])),
    ("worker open fds", lambda f: "+".join(str(t) for t in f["worker_fds"])),
    ("PG commits per message", lambda f: f"{f['pg_commits_per_message']:.4f} ({f['pg_commits']})"),
    ("PG rows written per message", lambda f: f"{f['pg_rows_per_message']:.4f} ({f['pg_rows']})"),
    ("client cores / machine cores", lambda f: f"{f['client_cores']:.2f} / {f['machine_cores']:.2f}"),
    ("background cores (burned)", lambda f: f"{f['background_cores']:.2f}"),
    ("client send lag p99 ms", lambda f: f"{f['client_lag_p99_ms']:.1f}"),
    ("... while others opened", lambda f: f"{f['opening_client_lag_p99_ms']:.1f}"),
    ("unanswered in window", lambda f: str(f["unanswered"])),
    (f"seconds with acks >= {GOAL_P99_MS:.0f} ms", lambda f: _slow_seconds(f)),
    ("GC pauses > 100 ms (longest)", lambda f: _pauses(f["collections_over_100ms"])),
)


def _slow_seconds(f: dict) -> str:
    return f"{f['slow_seconds']} (worst {f['slow_worst_second']} {f['slow_worst_at']})"


def _pauses(pauses: list) -> str:
    return f"{len(pauses)} ({max((ms for _, ms in pauses), default=0)})"


def report(phases: list[Phase], args) -> dict:
    out = {p.name: figures(p) for p in phases}
    echo, beat = out.get("echo"), out.get("heartbeat")
    ratio = beat["cpu_us_per_message"] / echo["cpu_us_per_message"] if echo and beat else math.nan
    titles = dict(PHASES)
    print(f"\n{'':<30}" + "".join(f"{titles[p.name]:>16}" for p in phases))
    for label, show in ROWS:
        print(f"{label:<30}" + "".join(f"{show(out[p.name]):>16}" for p in phases))
    print(f"{'CPU per heartbeat / per echo':<30}{'':>16}{ratio:>16.2f}" if echo and beat else "")
    for p in phases:
        f = out[p.name]
        if f["failures"] or f["workers_respawned"]:
            print(
                f"{titles[p.name]} failures: {f['failures']}{'; a worker died and respawned' * f['workers_respawned']}"
            )
        if f["refusals"]:
            causes = "full, slow loop, strained meter, busy pool"
            print(f"{titles[p.name]} 503s at the handshake by cause ({causes}): {f['refusals']}")
            print(f"{titles[p.name]}, by {TIMELINE_STEP} s since the ramp began (sockets taken, 503s by cause):")
            for line in _timeline(f["timeline"], f["opening_p99_by_step"]):
                print(f"    {line}")
    if beat:
        n = args.players
        bad = sum(v for k, v in beat["failures"].items() if "Timeout" in k or "internal" in k)
        checks = [
            (
                f"every player held or refused at the handshake, held at p99 < {GOAL_P99_MS:.0f} ms",
                beat["sessions_held"] + beat["refused"] == n and beat["p99_ms"] < GOAL_P99_MS,
                f"{beat['sessions_held']} held, {beat['refused']} refused, p99 {beat['p99_ms']:.1f} ms",
            ),
            (
                f"{min(n, GOAL_SESSIONS)} held",
                beat["sessions_held"] >= min(n, GOAL_SESSIONS),
                f"{beat['sessions_held']}" + ("" if n >= GOAL_SESSIONS else f"; the goal is {GOAL_SESSIONS}"),
            ),
            ("0 timeouts, 0 internal", bad == 0, f"{bad}"),
            (
                "0 PostgreSQL writes per heartbeat",
                beat["pg_rows"] == 0 < beat["messages_per_s"],
                f"{beat['pg_rows']} rows written",
            ),
        ]
        if echo:  # --only heartbeat measures no echo to compare with
            checks.insert(3, (f"CPU per heartbeat <= {GOAL_RATIO}x echo", ratio <= GOAL_RATIO, f"{ratio:.2f}x"))
        print("\ngoal: " + "; ".join(f"{what}: {'PASS' if ok else 'FAIL'} ({got})" for what, ok, got in checks))
    print(
        "CPU: gunicorn master + workers (utime + stime) over the window, per acked message. RSS: workers' VmRSS at "
        "the end of the window minus the idle dyno, per held session. PG: pg_stat_database deltas for the scratch "
        f"database from the window's start to {PG_STATS_LAG:g} s after its end (PostgreSQL's statistics lag), per "
        "message acked in that time; no startStream or stopStream falls in it."
    )
    for p in phases:
        if p.profile:
            print(f"\nprofile of one worker during {titles[p.name]} ({p.profile}):")
            print("\n".join(profile_summary(p.profile)))
    return {"ratio": ratio, **out}


# --- main -----------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    from streampay.sandbox import scratch  # here, not at the top: the spawned client processes never load the app

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", type=int, default=10_000, help="sockets in each phase (10000)")
    parser.add_argument("--seconds", type=float, default=60, help="measured window per phase (60)")
    parser.add_argument("--interval", type=float, default=5, help="seconds between a player's frames (5)")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY: one process per core (2)")
    parser.add_argument("--connections", type=int, help="WEB_CONNECTIONS per worker (default: players + 100)")
    parser.add_argument("--client-procs", type=int, default=2, help="load generator processes (2)")
    parser.add_argument("--ramp", type=float, default=100, help="sockets opened (and later stopped) per second (100)")
    parser.add_argument("--in-flight", type=int, default=50, help="opens in flight per client process (50)")
    parser.add_argument("--ack-timeout", type=float, default=10, help="seconds to wait for a reply (10)")
    parser.add_argument("--background-cores", type=float, default=0, help="cores of CPU burned beside the run (0)")
    parser.add_argument(
        "--sockets-per-worker", type=int, help="WS_MAX_SOCKETS_PER_WORKER, the admission cap (the app's default)"
    )
    parser.add_argument(
        "--open-grace",
        type=float,
        default=30,
        help="seconds after the ramp that a refused player keeps retrying before it counts as refused (30)",
    )
    parser.add_argument(
        "--no-retry",
        action="store_true",
        help="a 503 at the handshake is final (default: tried again after its Retry-After)",
    )
    parser.add_argument(
        "--asyncio-loop",
        action="store_true",
        help="run the load generator on asyncio's own event loop (default: uvloop's, a third cheaper per frame)",
    )
    parser.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate, as browsers do")
    parser.add_argument("--only", choices=[p for p, _ in PHASES], help="run one phase")
    parser.add_argument("--logs", type=Path, help="keep gunicorn's logs here (default: a temporary directory)")
    parser.add_argument("--profile", type=Path, help="py-spy one worker during each window, raw stacks here")
    scratch.add_options(parser, "streampay_bench_hb", redis_db=14)
    parser.add_argument("--time-limit", type=float, help="abort after this many seconds (default: from the sizes)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.connections is None:
        # The workers race for accept(), so the split is uneven: any one of them may take most of the sockets.
        args.connections = args.players + 100
    if args.time_limit is None:
        per_phase = 90 + 2 * args.players / args.ramp + args.seconds + 2 * PG_STATS_LAG + 8 * args.ack_timeout
        args.time_limit = 300 + args.players / 100 + 2 * per_phase + 2 * max(0, args.open_grace - 30)
    return args


def limits() -> str:
    """What can bound the session count besides CPU: open files, memory."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    pid_max = Path("/proc/sys/kernel/pid_max").read_text().strip()
    mem = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return (
        f"open files {soft} per process (gunicorn holds a socket per session), pid_max {pid_max}, "
        f"{int(mem) / 1024**2:.0f} GiB of memory"
    )


def _abort(signum, frame):
    raise Abort(signal.Signals(signum).name)


def _raise_fd_limit(needed: int) -> None:
    """Children inherit it: gunicorn holds a socket per session, a client a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        print(f"warning: open files limited to {hard}; about {needed} may be needed per worker", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import websockets  # noqa: F401
    except ImportError:
        print("the client needs websockets: .venv/bin/pip install -r requirements-dev.txt", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _abort)
    signal.signal(signal.SIGALRM, _abort)
    signal.alarm(int(args.time_limit))
    _raise_fd_limit(args.connections + 200)
    from streampay.sandbox.scratch import admin_connection, app_env, scratch_database, scratch_redis

    env = app_env(
        args.pg,
        args.db_name,
        args.redis,
        HEARTBEAT_TIMEOUT_SECONDS="3600",
        STREAM_WINDOW_SECONDS="3600",
        MAX_SESSIONS_PER_VIEWER="1",
        WEB_CONCURRENCY=str(args.workers),
        WEB_CONNECTIONS=str(args.connections),
    )
    if args.sockets_per_worker is not None:
        env["WS_MAX_SOCKETS_PER_WORKER"] = str(args.sockets_per_worker)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "JWT_REFRESH_SECRET")})
    os.environ.update({"LOG_LEVEL": "WARNING", "EMBEDDED_WORKER": "false"})
    print(
        f"StreamPay heartbeat benchmark: {args.players} players, a frame every {args.interval:g} s each, "
        f"{args.seconds:g} s measured per phase\n"
        f"web dyno: gunicorn -c gunicorn.conf.py (gevent), WEB_CONCURRENCY={args.workers} x "
        f"WEB_CONNECTIONS={args.connections} (a socket holds a greenlet); "
        f"HEARTBEAT_TIMEOUT_SECONDS=STREAM_WINDOW_SECONDS=3600 "
        f"so no session times out or checkpoints: only heartbeats run\n"
        f"load: {args.client_procs} asyncio processes ({'asyncio' if args.asyncio_loop else 'uvloop'}'s loop, "
        f"websockets, permessage-deflate "
        f"{'off' if args.no_deflate else 'offered, as browsers do'}), opening {args.ramp:g}/s, sharing the machine's "
        f"{os.cpu_count()} cores with gunicorn, PostgreSQL and Redis\n"
        f"background: {args.background_cores:g} cores burned by other processes for the whole run\n"
        f"database {args.db_name}, Redis {args.redis}, time limit {args.time_limit:.0f} s",
        flush=True,
    )
    print(f"limits: {limits()}", flush=True)
    busy = machine_busy()
    time.sleep(2)
    busy = (machine_busy() - busy) / 2
    note = "quiet" if busy < 0.2 else "NOT quiet: other work competes for the cores and skews every figure"
    print(f"machine before start: {busy:.2f} of {os.cpu_count()} cores busy ({note})", flush=True)
    phases = []
    with tempfile.TemporaryDirectory(prefix="streampay-bench-hb-") as tmp:
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            with scratch_database(args.pg, args.db_name), scratch_redis(args.redis):
                began = time.monotonic()
                content_id, tokens = seed(args.players)
                print(f"seeded {args.players} credited viewers in {time.monotonic() - began:.0f} s", flush=True)
                pg = admin_connection(args.pg)
                try:
                    with background_load(args.background_cores, args.time_limit) as burners:
                        for name, title in PHASES:
                            if args.only and name != args.only:
                                continue
                            print(f"  {title} ...", flush=True)
                            phases.append(run_phase(name, args, env, tokens, content_id, pg, workdir, burners))
                finally:
                    pg.close()
                out = report(phases, args)
        except (KeyboardInterrupt, Abort) as exc:
            print(
                f"\nstopped ({exc.__class__.__name__} {exc}): clients and gunicorn stopped, database dropped, "
                "Redis DB flushed",
                file=sys.stderr,
            )
            return 130
        finally:
            signal.alarm(0)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

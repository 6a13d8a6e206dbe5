"""Catalogue throughput and latency against the real web dyno, PostgreSQL and Redis.

    .venv/bin/python bench/catalogue.py [--clients 32] [--seconds 10] [--items 10000]

It creates a scratch database (streampay_bench) and uses Redis DB 12, applies the migrations, inserts a
catalogue, starts gunicorn with gunicorn.conf.py on a free loopback port, drives it with keep-alive
clients (wrk when installed, else asyncio client processes), prints one row per scenario against the
goal, and drops the database and flushes its Redis DB again, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import statistics
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
API = "/api/v1/content/"
# Requests/s as a share of /healthz's in the same run: a page nobody asked for yet (its rows read from the
# database) at least 0.3, browsing that mostly repeats pages at least 0.6; and every scenario's p99 under 100 ms.
GOAL_RATIO = {"distinct pages": 0.3, "distinct searches": 0.3}
GOAL_RATIO_CACHED, GOAL_P99_MS = 0.6, 100.0
CATEGORIES = {"music": 6, "podcasts": 4, "education": 3, "gaming": 3, "film": 2, "sports": 2, "news": 1, "comedy": 1}
SORTS = ["newest", "oldest", "price", "-price", "duration", "-duration", "title"]
ADJECTIVES = "quiet golden electric hidden midnight wild urban ancient lucky frozen crimson silent brave velvet".split()
NOUNS = (
    "river sunset kitchen guitar mountain city ocean garden robot forest desert piano harbor galaxy market storm "
    "library engine island festival"
).split()
FORMATS = "live session|tutorial|documentary|podcast episode|short film|vlog|lecture|highlights|interview".split("|")
PLACES = (
    "Lisbon Nairobi Osaka Quito Tallinn Hanoi Accra Bergen Cusco Dakar Fez Galway Hobart Izmir Jaipur Kyoto Lagos "
    "Malmo Nantes Oaxaca Porto Rabat Sapporo Tbilisi Utrecht Valparaiso Windhoek Yerevan Zagreb"
).split()
SEARCH_WORD = "guitar"  # in about one title in twenty and one description in ten
CATEGORY = "music"


# --- the scratch database and Redis -------------------------------------------------------------------------------


def migrate_and_seed(items: int, seed: int) -> dict:
    """Apply the migrations and insert `items` visible items (plus 5% hidden ones) and their creators."""
    from sqlalchemy import insert, text

    from streampay import create_app
    from streampay.content.models import Content
    from streampay.extensions import db, upgrade
    from streampay.users import passwords
    from streampay.users.models import User

    app = create_app()
    with app.app_context():
        upgrade()
        rng = random.Random(seed)
        users = _creators(rng, max(1, items // 50))
        users[0]["password_hash"] = passwords.hash_password(EDITOR_PASSWORD)  # edits an item before each scenario
        db.session.execute(insert(User), users)
        rows = _content_rows(rng, [u["id"] for u in users], items)
        for start in range(0, len(rows), 2000):
            db.session.execute(insert(Content), rows[start : start + 2000])
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE content"))  # what autovacuum does soon after a bulk load
            conn.execute(text("VACUUM ANALYZE users"))
        db.session.remove()
        db.engine.dispose()
    categories = Counter(r["category"] for r in rows[:items])
    editor = {"email": users[0]["email"], "item": str(next(r["id"] for r in rows if r["creator_id"] == users[0]["id"]))}
    return {
        "creators": len(users),
        "visible": items,
        "hidden": len(rows) - items,
        "categories": categories,
        "editor": editor,
    }


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _creators(rng: random.Random, n: int) -> list[dict]:
    from streampay.users.models import Role

    now = datetime.now(UTC)
    return [
        {
            "id": _uuid(rng),
            "email": f"creator{i}@bench.example",
            "username": f"creator{i}",
            "password_hash": "!bench: no login",
            "role": Role.CREATOR,
            "display_name": f"Creator {rng.choice(PLACES)} {i}" if i % 2 else None,
            "created_at": now - timedelta(days=400),
            "updated_at": now - timedelta(days=400),
        }
        for i in range(n)
    ]


def _content_rows(rng: random.Random, creators: list, items: int) -> list[dict]:
    from streampay.content.models import ContentStatus

    now = datetime.now(UTC)
    cats, weights = list(CATEGORIES), list(CATEGORIES.values())
    rows = []
    hidden = items // 20
    for n in range(items + hidden):
        noun, fmt = rng.choice(NOUNS), rng.choice(FORMATS)
        video = rng.random() < 0.7
        created = now - timedelta(seconds=rng.randrange(365 * 86400))
        item_id = _uuid(rng)
        row = {
            "id": item_id,
            "creator_id": rng.choice(creators),
            "title": f"{rng.choice(ADJECTIVES).title()} {noun.title()} {fmt} {n}",
            "description": (
                f"A {fmt} about {rng.choice(NOUNS)} and {rng.choice(NOUNS)}, recorded in {rng.choice(PLACES)}. "
                + " ".join(rng.choice(ADJECTIVES) for _ in range(rng.randrange(4, 30)))
            ),
            "category": rng.choices(cats, weights)[0],
            "tags": rng.sample(NOUNS, rng.randrange(0, 4)),
            "price_per_second": rng.randrange(1, 2000) * 10_000,
            "is_published": True,
            "status": ContentStatus.READY,
            "status_changed_at": created,
            "original_filename": f"upload-{n}.{'mp4' if video else 'mp3'}",
            "media_type": "video/mp4" if video else "audio/mpeg",
            "size_bytes": rng.randrange(1, 2000) * 1_000_000,
            "storage_backend": "local",
            "storage_key": f"media/{item_id}.{'mp4' if video else 'mp3'}",
            "thumbnail_key": f"thumbs/{item_id}.jpg" if video else None,
            "duration_ms": rng.randrange(10_000, 7_200_000),
            "container": "mp4" if video else "mp3",
            "video_codec": "h264" if video else None,
            "audio_codec": "aac" if video else "mp3",
            "bitrate": rng.randrange(128, 8000) * 1000,
            "width": 1920 if video else None,
            "height": 1080 if video else None,
            "sha256": f"{rng.getrandbits(256):064x}",
            "processed_at": created,
            "created_at": created,
            "updated_at": created,
            "deleted_at": None,
        }
        if n >= items:  # the rest exercise the visibility rule: processing, unpublished or deleted
            kind = n % 3
            row["status"] = ContentStatus.PROCESSING if kind == 0 else ContentStatus.READY
            row["is_published"] = kind != 1
            row["deleted_at"] = now if kind == 2 else None
        rows.append(row)
    return rows


# --- the web dyno ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def web_dyno(env: dict, port: int, workdir: Path):
    """gunicorn with the project's gunicorn.conf.py, bound to loopback only; stopped on the way out."""
    log_path = workdir / "gunicorn.log"
    cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "wsgi:app"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, port, log_path)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen, port: int, log_path: Path, timeout: float = 60) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready after {timeout:.0f}s:\n{log_path.read_text()[-3000:]}")


# --- CPU accounting (Linux /proc; blank elsewhere) ------------------------------------------------------------------


CPU_COLUMNS = ("web", "postgres", "redis", "client", "machine")


def cpu_snapshot(web_pid: int, database: str, client_pids=()) -> dict[str, float]:
    """CPU seconds so far of gunicorn (master and workers), the PostgreSQL backends serving `database`, every
    Redis server, the load generator (the given live processes, else finished children such as wrk), and the
    whole machine, plus the wall clock. Redis and the machine include other users' work."""
    snap = dict.fromkeys(CPU_COLUMNS, 0.0)
    snap["wall"] = time.monotonic()
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(entry) == web_pid or int(fields[1]) == web_pid:
            snap["web"] += seconds
        elif int(entry) in client_pids:
            snap["client"] += seconds
        elif name.startswith("postgres") and f" {database} " in _cmdline(entry):
            snap["postgres"] += seconds  # a backend's title: "postgres: 15/main: user database host state"
        elif name.startswith("redis-server"):
            snap["redis"] += seconds
    if not client_pids:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        snap["client"] = usage.ru_utime + usage.ru_stime
    snap["machine"] = _machine_busy()
    return snap


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cores_between(before: dict | None, after: dict | None) -> dict:
    """Average cores each column used between two snapshots."""
    if not before or not after:
        return {}
    return {k: (after[k] - before[k]) / (after["wall"] - before["wall"]) for k in CPU_COLUMNS}


def _machine_busy() -> float:
    """CPU seconds spent by the whole machine (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def background_load(seconds: float = 2.0) -> float | None:
    """Cores already busy before the benchmark starts (other work on the machine skews every figure)."""
    try:
        before = _machine_busy()
        time.sleep(seconds)
        return (_machine_busy() - before) / seconds
    except (OSError, ValueError, IndexError):
        return None  # not Linux


# --- load generation ------------------------------------------------------------------------------------------------


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    sources: dict | None = None  # where the catalogue's pages were read (its /metrics counter) -> pages
    cores: dict = field(default_factory=dict)  # CPU_COLUMNS -> cores used on average during the window

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_SCRIPT = """
local paths = {%s}
local threads = 0
local n = 0
function setup(thread)
  thread:set("tid", threads)
  thread:set("nthreads", %d)
  threads = threads + 1
end
function init(args)
  n = tid  -- the global thread:set gave this thread's Lua state
end
function request()
  local path = paths[(n %% #paths) + 1]
  n = n + nthreads
  return wrk.format("GET", path)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def run_wrk(port: int, paths: list[str], clients: int, seconds: float, workdir: Path, probe=None) -> Result:
    """`probe(client_pids)` snapshots CPU use; it is called as the window opens and closes."""
    probe = probe or (lambda pids: None)
    threads = min(2, clients)
    script = workdir / "paths.lua"
    script.write_text(WRK_SCRIPT % (",".join(json.dumps(p) for p in paths), threads))
    cmd = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds}s", "--timeout", "10s", "-s", str(script)]
    before = probe(())
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=seconds + 60)
    after = probe(())
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    data = json.loads(line[len("RESULT ") :])
    errors = data["connect"] + data["read"] + data["write"] + data["status"] + data["timeout"]
    return Result(
        requests=data["requests"],
        errors=errors,
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        cores=cores_between(before, after),
    )


async def _one_connection(port, paths, first, stride, start_at, end_at, latencies, errors):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    i = first
    try:
        while time.time() < end_at:
            path = paths[i % len(paths)]
            i += stride
            began = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status, close = await _read_response(reader)
            if time.time() > end_at:
                break  # finished after the window: not counted, as wrk does
            latencies.append(time.perf_counter() - began)
            if status >= 400:
                errors[0] += 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, ValueError, asyncio.IncompleteReadError):
        errors[0] += 1
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    status = int((await reader.readline()).split()[1])
    length, chunked, close = 0, False, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = value == b"close"
    if not chunked:
        await reader.readexactly(length)
        return status, close
    while size := int((await reader.readline()).split(b";")[0], 16):
        await reader.readexactly(size + 2)
    await reader.readline()
    return status, close


def _client_process(port, paths, conn_ids, total_conns, start_at, end_at, out):
    latencies, errors = [], [0]

    async def main():
        tasks = [_one_connection(port, paths, c, total_conns, start_at, end_at, latencies, errors) for c in conn_ids]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), end_at - time.time() + 15)
        except TimeoutError:
            errors[0] += 1

    asyncio.run(main())
    out.send((latencies, errors[0]))
    out.close()


def run_python(port: int, paths: list[str], clients: int, seconds: float, procs: int, probe=None) -> Result:
    """`probe(client_pids)` snapshots CPU use; it is called as the window opens and closes."""
    probe = probe or (lambda pids: None)
    ctx = multiprocessing.get_context("spawn")
    procs = max(1, min(procs, clients))
    start_at = time.time() + 2.0  # time for the spawned processes to import and connect
    end_at = start_at + seconds
    workers = []
    for p in range(procs):
        recv, send = ctx.Pipe(duplex=False)
        conn_ids = list(range(p, clients, procs))
        proc = ctx.Process(target=_client_process, args=(port, paths, conn_ids, clients, start_at, end_at, send))
        proc.start()
        send.close()
        workers.append((proc, recv))
    latencies, errors = [], 0
    pids = {proc.pid for proc, _ in workers}
    try:
        time.sleep(max(0.0, start_at - time.time()))
        before = probe(pids)
        time.sleep(max(0.0, end_at - time.time()))
        after = probe(pids)
        for proc, recv in workers:
            if recv.poll(seconds + 30):
                lat, err = recv.recv()
                latencies += lat
                errors += err
            else:
                errors += 1
            proc.join(5)
    finally:
        for proc, _ in workers:
            if proc.is_alive():
                proc.terminate()
                proc.join()
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    return Result(
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        cores=cores_between(before, after),
    )


# --- scenarios ------------------------------------------------------------------------------------------------------


def _url(**params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
    return API + ("?" + query if query else "")


def scenarios(items: int, categories: dict[str, int], seed: int) -> list[tuple[str, str, list[str]]]:
    """(name, what, paths): requests cycle through paths, each client connection from its own offset.
    `categories` holds the visible items per category, so category walks stay within their pages."""
    rng = random.Random(seed)
    pages = max(1, -(-items // 10))
    terms = NOUNS + ADJECTIVES + [p.lower() for p in PLACES]
    # A browsing mix: a hot set of 630 distinct pages (walks, searches, categories, sorts).
    mixed = [_url(page=p) for p in range(1, 101)]
    mixed += [_url(search=t, page=p) for t in terms for p in (1, 2)]
    mixed += [_url(category=c, page=p) for c in CATEGORIES for p in range(1, 26)]
    mixed += [_url(sort=s, page=p) for s in SORTS for p in range(1, 21)]
    mixed += [_url(category=c, search=t) for c in CATEGORIES for t in NOUNS[:8]]
    rng.shuffle(mixed)
    # Never the same page twice in a run (keys unseen by the cache): deep walks in every sort and category.
    walks = [_url(sort=s, page=p) for s in SORTS for p in range(1, pages + 1)]
    walks += [
        _url(category=c, sort=s, page=p)
        for c, n in categories.items()
        for s in SORTS
        for p in range(1, -(-n // 10) + 1)
    ]
    rng.shuffle(walks)
    searches = [_url(search=t, sort=s, page=p) for t in terms for s in SORTS for p in (1, 2, 3)]
    searches += [_url(search=t, category=c, sort=s) for t in terms for c in CATEGORIES for s in SORTS]
    rng.shuffle(searches)
    return [
        ("/healthz", "baseline: liveness probe", ["/healthz"]),
        ("first page", "GET /content/ (one cache key)", [API]),
        (f"search={SEARCH_WORD}", "one search (one cache key)", [_url(search=SEARCH_WORD)]),
        (f"category={CATEGORY}", "one category (one cache key)", [_url(category=CATEGORY)]),
        ("mixed browse", f"{len(mixed)} distinct pages, cycled", mixed),
        ("distinct pages", f"{len(walks)} page walks, each once", walks),
        ("distinct searches", f"{len(searches)} searches, each once", searches),
    ]


EDITOR_PASSWORD = "bench-" + uuid.uuid4().hex


def _call(port: int, method: str, path: str, body: dict, token: str | None = None) -> dict:
    import urllib.request

    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    ask = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers=headers, method=method
    )
    with urllib.request.urlopen(ask, timeout=30) as reply:  # noqa: S310 (loopback)
        return json.loads(reply.read())


class Editor:
    """A creator who edits one of their items through the API before each scenario: what a catalogue in use sees
    many times a day, and what every page the scenario asks for is then the first request for."""

    def __init__(self, port: int, editor: dict):
        self.port, self.item = port, editor["item"]
        signed_in = _call(port, "POST", "/api/v1/auth/login", {"email": editor["email"], "password": EDITOR_PASSWORD})
        self.token, self.edits = signed_in["access_token"], 0

    def edit(self) -> None:
        self.edits += 1
        price = f"0.{self.edits % 9000 + 1000:04d}000"  # a new price each time
        _call(self.port, "PATCH", API + self.item, {"price_per_second": price}, self.token)


SOURCES = ("cache", "held", "database")
METRICS_TOKEN = "bench-" + uuid.uuid4().hex


def page_sources(port: int) -> dict[str, float]:
    """The server's count of catalogue pages by where they were read (all its workers: /metrics adds them up)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    ask = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(ask, timeout=30) as reply:  # noqa: S310 (loopback)
        text = reply.read().decode()
    counts = dict.fromkeys(SOURCES, 0.0)
    for family in text_string_to_metric_families(text):
        if family.name == "streampay_catalogue_pages":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["source"]] += sample.value
    return counts


def measure(args, port, paths, workdir, redis_client, server_pid, editor: Editor) -> Result:
    # Each scenario starts right after a catalogue change (every cached page is then stale, and each web process
    # moves what it holds on), or with --after-wipe from an emptied Redis (what every process holds dropped).
    if args.after_wipe:
        redis_client.flushdb()
    else:
        editor.edit()
    catalogue = paths[0].startswith(API)
    if args.warm and catalogue:  # the same load first, unmeasured: the window opens on a catalogue seen before
        _warm(args, port, paths, workdir, args.seconds)
    before = page_sources(port) if catalogue else None

    def probe(client_pids):
        try:
            return cpu_snapshot(server_pid, args.db_name, client_pids)
        except (OSError, ValueError, IndexError):
            return None  # not Linux: no CPU columns

    if args.load == "wrk":
        result = run_wrk(port, paths, args.clients, args.seconds, workdir, probe)
    else:
        result = run_python(port, paths, args.clients, args.seconds, args.client_procs, probe)
    if catalogue:
        after = page_sources(port)
        result.sources = {k: after[k] - before[k] for k in SOURCES}
    return result


# --- report ---------------------------------------------------------------------------------------------------------


def _cores(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[Result], baseline: list[Result]) -> dict:
    """One scenario over its rounds: medians, each ratio taken against the same round's /healthz."""
    requests = sum(r.requests for r in runs)
    pages = {k: sum(r.sources[k] for r in runs) for k in SOURCES} if all(r.sources for r in runs) else None
    return {
        "rps": _median(r.rps for r in runs),
        "ratio": _median(r.rps / b.rps for r, b in zip(runs, baseline, strict=True) if b.rps),
        "p50_ms": _median(r.p50_ms for r in runs),
        "p99_ms": _median(r.p99_ms for r in runs),
        "errors": sum(r.errors for r in runs),
        "requests": requests,
        "sources": {k: v / sum(pages.values()) for k, v in pages.items()} if pages and sum(pages.values()) else None,
        "web_cpu_ms_per_request": _median(r.cores["web"] * 1000 / r.rps for r in runs if r.cores and r.rps),
        "pg_cpu_ms_per_request": _median(r.cores["postgres"] * 1000 / r.rps for r in runs if r.cores and r.rps),
        "cores": {k: _median(r.cores.get(k) for r in runs) for k in CPU_COLUMNS},
        "rounds": [{"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "cores": r.cores} for r in runs],
    }


def _cores(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _miss(row: dict, goal: float) -> str:
    """FAIL and by how much: the ratio short of its goal, the p99 over its bound, the errors."""
    misses = []
    if row["ratio"] < goal:
        misses.append(f"{row['ratio']:.2f} < {goal}x")
    if row["p99_ms"] >= GOAL_P99_MS:
        misses.append(f"p99 +{row['p99_ms'] - GOAL_P99_MS:.0f} ms")
    if row["errors"]:
        misses.append(f"{row['errors']} errors")
    return "FAIL (" + ", ".join(misses) + ")"


def report(rows: list[tuple[str, str, list[Result]]], clients: int) -> list[dict]:
    baseline = rows[0][2]
    header = (
        f"{'scenario':<20} {'req/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'redis':>5} {'held':>5} {'db':>5} "
        f"{'cpu ms/req: web':>15} {'pg':>5}  {'cores: web':>10} {'pg':>5} {'redis':>5} {'load':>5} {'all':>5}  goal"
    )
    print("\n" + header + "\n" + "-" * len(header))
    out = []
    for name, what, runs in rows:
        row = {"scenario": name, "what": what, **summarise(runs, baseline)}
        goal = GOAL_RATIO.get(name, GOAL_RATIO_CACHED)
        ok = row["ratio"] >= goal and row["p99_ms"] < GOAL_P99_MS and row["errors"] == 0
        row["goal_ratio"] = goal
        row["verdict"] = "baseline" if name == "/healthz" else ("PASS" if ok else _miss(row, goal))
        sources = row["sources"] or {}
        read = " ".join(f"{sources[k]:>5.0%}" if k in sources else f"{'-':>5}" for k in SOURCES)
        cores = row["cores"]
        print(
            f"{name:<20} {row['rps']:>8.0f} {row['ratio']:>6.2f} {row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} "
            f"{row['errors']:>6} {read} {_cores(row['web_cpu_ms_per_request']):>15} "
            f"{_cores(row['pg_cpu_ms_per_request']):>5}  {_cores(cores['web']):>10} {_cores(cores['postgres']):>5} "
            f"{_cores(cores['redis']):>5} {_cores(cores['client']):>5} {_cores(cores['machine']):>5}  "
            f"{row['verdict']}"
        )
        out.append(row)
    rounds = len(baseline)
    print(
        f"\ngoal: >= {GOAL_RATIO_CACHED} x /healthz requests/s (distinct pages and searches >= "
        f"{GOAL_RATIO['distinct pages']} x) and p99 < {GOAL_P99_MS:.0f} ms, no errors, at {clients} "
        "clients: " + ", ".join(f"{o['scenario']} {o['verdict']}" for o in out if o["verdict"] != "baseline")
    )
    print(
        (f"medians of {rounds} rounds; each ratio against its own round's /healthz. " if rounds > 1 else "")
        + "redis, held, db: where the catalogue's pages were read (the server's streampay_catalogue_pages counter): "
        "Redis's page cache, the web process's listings held in memory, the database. "
        "cpu ms/req: CPU per request spent by gunicorn and by the PostgreSQL backends of the bench database. "
        "cores: average cores used during the window by gunicorn, those backends, Redis, the load generator and "
        "the whole machine (redis and all include anything else running)."
    )
    return out


# --- main -----------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    from streampay.sandbox import scratch  # here, not at the top: the spawned client processes never load the app

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive connections (32)")
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per scenario (10)")
    parser.add_argument("--items", type=int, default=10_000, help="visible catalogue items (10000)")
    parser.add_argument("--rounds", type=int, default=1, help="run every scenario this many times; report medians")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY: one process per core (2)")
    parser.add_argument(
        "--warm",
        action="store_true",
        help="run each catalogue scenario's load for --seconds, unmeasured, before its window: the steady state "
        "of a catalogue unchanged that long (its pages no longer first requests) instead of the first seconds "
        "after a change",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="show only the first pages before the scenarios, not every item and the mixed browse's pages: the first "
        "minutes of a new web process, which writes each item's JSON the first time a page shows it (about 28 us of "
        "CPU an item) and reads each search term's matches the first time it is asked (3-5 ms of PostgreSQL)",
    )
    parser.add_argument(
        "--after-wipe",
        action="store_true",
        help="start each scenario from an emptied Redis (FLUSHDB) instead of right after an item's edit: the first "
        "seconds after Redis is wiped, when every web process drops what it holds of the catalogue",
    )
    parser.add_argument(
        "--index-ids",
        type=int,
        help="CATALOGUE_INDEX_IDS for the server (default: the app's); 0 reads every uncached page from the database",
    )
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto", help="load generator")
    parser.add_argument("--client-procs", type=int, default=2, help="processes of the Python load generator (2)")
    parser.add_argument("--only", help="comma-separated scenario names to run (the baseline always runs)")
    scratch.add_options(parser, "streampay_bench", redis_db=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.load == "auto":
        args.load = "wrk" if shutil.which("wrk") else "python"
    return args


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    from streampay.sandbox.scratch import app_env, scratch_database, scratch_redis

    env = app_env(
        args.pg,
        args.db_name,
        args.redis,
        WEB_CONCURRENCY=str(args.workers),
        METRICS_TOKEN=METRICS_TOKEN,
        **({"CATALOGUE_INDEX_IDS": str(args.index_ids)} if args.index_ids is not None else {}),
    )
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "LOG_LEVEL", "EMBEDDED_WORKER")})
    print(
        f"StreamPay catalogue benchmark: {args.items} items, {args.clients} clients, {args.seconds:g} s per scenario\n"
        f"web dyno: gunicorn -c gunicorn.conf.py (gevent), WEB_CONCURRENCY={args.workers}: one worker process per "
        f"core (each has its own GIL), every client on a greenlet; a request's PostgreSQL and Redis calls yield to "
        f"the others (psycogreen, gevent)\n"
        f"load: {'wrk (C, 2 threads)' if args.load == 'wrk' else f'{args.client_procs} asyncio processes'}, "
        f"keep-alive, sharing the machine's {os.cpu_count()} cores with gunicorn, PostgreSQL and Redis\n"
        f"database {args.db_name}, Redis {args.redis}\n"
        + (
            "each scenario starts from an emptied Redis (--after-wipe): every process drops what it holds"
            if args.after_wipe
            else "each scenario starts right after a creator edits an item through the API: every cached page stale"
        )
        + (
            "\nbefore the scenarios: the first 39 pages shown (--fresh: a new web process)"
            if args.fresh
            else "\nbefore the scenarios: every item shown (the newest listing at 100 a page) and the mixed browse's "
            "pages asked for, as for a web process in service a while; --fresh for a new one"
        ),
        flush=True,
    )
    with contextlib.suppress(OSError):
        print(
            f"load average at start: {' '.join(Path('/proc/loadavg').read_text().split()[:3])} (1, 5, 15 min)",
            flush=True,
        )
    busy = background_load()
    if busy is not None:
        note = "quiet" if busy < 0.2 else "NOT quiet: other work competes for the cores and skews every figure"
        print(f"machine before start: {busy:.2f} of {os.cpu_count()} cores busy ({note})", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="streampay-bench-") as tmp:
        workdir = Path(tmp)
        try:
            with scratch_database(args.pg, args.db_name), scratch_redis(args.redis) as redis_client:
                began = time.monotonic()
                seeded = migrate_and_seed(args.items, args.seed)
                print(
                    f"seeded {seeded['visible']} visible + {seeded['hidden']} hidden items by {seeded['creators']} "
                    f"creators in {time.monotonic() - began:.1f} s",
                    flush=True,
                )
                port = free_port()
                with web_dyno(env, port, workdir) as dyno:
                    chosen = set(args.only.split(",")) if args.only else None
                    every = scenarios(args.items, seeded["categories"], args.seed)
                    plan = [
                        (name, what, paths)
                        for name, what, paths in every
                        if chosen is None or name == "/healthz" or name in chosen
                    ]
                    if args.fresh:
                        warm = [_url(page=p, page_size=25) for p in range(1, 40)] + ["/healthz"]
                    else:  # in service a while: every item shown, the pages people browse most asked for before
                        warm = [_url(page=p, page_size=100) for p in range(1, -(-args.items // 100) + 1)]
                        warm += next(paths for name, _, paths in every if name == "mixed browse")
                    _warm(args, port, warm, workdir)
                    editor = Editor(port, seeded["editor"])
                    results = {name: [] for name, _, _ in plan}
                    for round_ in range(1, args.rounds + 1):
                        for name, what, paths in plan:
                            label = f"{name} ({round_}/{args.rounds})" if args.rounds > 1 else name
                            print(f"  {label:<26} {what} ...", end=" ", flush=True)
                            result = measure(args, port, paths, workdir, redis_client, dyno.pid, editor)
                            print(f"{result.rps:.0f} req/s, p99 {result.p99_ms:.1f} ms", flush=True)
                            results[name].append(result)
                    rows = [(name, what, results[name]) for name, what, _ in plan]
        except KeyboardInterrupt:
            print("\ninterrupted: gunicorn stopped, database dropped, Redis DB flushed", file=sys.stderr)
            return 130
    out = report(rows, args.clients)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": out}, indent=2))
    return 0


def _warm(args, port, paths, workdir, seconds=3) -> None:
    """Open every worker's database and Redis connections and import everything before measuring."""
    seconds = min(seconds, args.seconds)
    if args.load == "wrk":
        run_wrk(port, paths, args.clients, seconds, workdir)
    else:
        run_python(port, paths, args.clients, seconds, args.client_procs)


if __name__ == "__main__":
    sys.exit(main())

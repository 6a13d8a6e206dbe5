"""Analytics benchmark: one creator with 1,000 items and a year of charges, plus the platform view.

    .venv/bin/python bench/analytics.py [--charges 100000,1000000] [--items 1000] [--viewers 5000] [--repeat 200]

For each history size, builds a scratch PostgreSQL database (dropped at the end unless --keep),
bulk-loads with COPY what a year of streaming leaves behind into the tables the real paths write
(users, items, sessions, ledger transactions and entries, the usage outbox, deposits and monthly
payouts), folds the outbox into the rollups with the real fold, then times each dashboard call
through the app (server time, in process) against a naive GROUP BY over the ledger in the same run,
and prints p50/p99 of each, side by side for the sizes, against the goal (p99 < 50 ms).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select, text  # noqa: E402

from streampay import create_app  # noqa: E402
from streampay.analytics import fold  # noqa: E402
from streampay.auth import tokens  # noqa: E402
from streampay.extensions import db, upgrade  # noqa: E402
from streampay.users.models import Role, User  # noqa: E402

DB = "streampay_bench_analytics"
YEAR_END = datetime(2026, 12, 1, tzinfo=UTC)
YEAR_START = YEAR_END - timedelta(days=365)
CHECKPOINT_MS = 60_000
FEE_BPS = 1000
GOAL_MS = 50.0


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", os.environ.get("PGUSER", "postgres"), "-d", "postgres", "-qc", sql],
        check=True,
        capture_output=True,
    )


class Copier:
    """COPY rows into a table when flushed (the caller flushes parents before children)."""

    def __init__(self, conn, table: str, columns: tuple[str, ...]):
        self.conn, self.table, self.columns = conn, table, columns
        self.buffer, self.count = io.StringIO(), 0

    def add(self, *values) -> None:
        self.buffer.write("\t".join("\\N" if v is None else str(v) for v in values))
        self.buffer.write("\n")
        self.count += 1

    def flush(self) -> None:
        self.buffer.seek(0)
        with self.conn.cursor() as cur:
            cur.copy_expert(f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN", self.buffer)
        self.buffer = io.StringIO()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def load(app, creator: User, args) -> dict:
    """A year of one creator's streaming, bulk-loaded; returns what the calls need to know."""
    rng = random.Random(7)
    start_ms = int(YEAR_START.timestamp() * 1000)
    span_ms = int((YEAR_END - YEAR_START).total_seconds() * 1000) - 3_600_000
    raw = db.engine.raw_connection()
    conn = raw.driver_connection
    now = iso(int(YEAR_END.timestamp() * 1000))

    viewers = [uuid.uuid4() for _ in range(args.viewers)]
    users = Copier(
        conn, "users", ("id", "email", "username", "password_hash", "role", "is_active", "created_at", "updated_at")
    )
    for n, vid in enumerate(viewers):
        joined = iso(start_ms + rng.randrange(span_ms))
        users.add(vid, f"v{n}@bench.test", f"bench-v{n}", "-", "viewer", "t", joined, joined)
    users.flush()

    items = [uuid.uuid4() for _ in range(args.items)]
    prices = [rng.choice((1_000, 5_000, 10_000, 20_000, 50_000)) for _ in items]
    content = Copier(
        conn,
        "content",
        (
            "id", "creator_id", "title", "description", "category", "tags", "price_per_second", "is_published",
            "status", "status_changed_at", "original_filename", "media_type", "size_bytes", "storage_backend",
            "storage_key", "duration_ms", "created_at", "updated_at",
        ),
    )  # fmt: skip
    for n, (cid, price) in enumerate(zip(items, prices, strict=True)):
        content.add(
            cid, creator.id, f"Item {n}", "", "general", "[]", price, "t", "ready", now, f"i{n}.mp4",
            "video/mp4", 1, "local", f"bench/{n}", 3_600_000, now, now,
        )  # fmt: skip
    content.flush()

    accounts = Copier(conn, "ledger_accounts", ("id", "kind", "user_id", "owner", "balance", "held", "created_at"))
    wallet_ids = {vid: n + 1 for n, vid in enumerate(viewers)}
    earnings_id, fees_id, adjust_id = len(viewers) + 1, len(viewers) + 2, len(viewers) + 3
    for vid in viewers:  # balances are set from the entries at the end
        accounts.add(wallet_ids[vid], "viewer_wallet", vid, vid, 0, 0, iso(start_ms))
    accounts.add(earnings_id, "creator_earnings", creator.id, creator.id, 0, 0, iso(start_ms))
    accounts.add(fees_id, "platform_fees", None, "platform", 0, 0, iso(start_ms))
    accounts.add(adjust_id, "adjustments", None, "platform", 0, 0, iso(start_ms))
    accounts.flush()
    spent = dict.fromkeys(viewers, 0)
    txns = Copier(conn, "ledger_transactions", ("id", "idempotency_key", "kind", "details", "created_at"))
    entries = Copier(conn, "ledger_entries", ("id", "transaction_id", "account_id", "amount", "created_at"))
    usage = Copier(
        conn,
        "streaming_usage",
        ("at_ms", "session_id", "content_id", "creator_id", "viewer_id", "sessions", "watch_ms", "gross", "fee",
         "ended_ms"),
    )  # fmt: skip
    sessions = Copier(
        conn,
        "streaming_sessions",
        ("id", "viewer_id", "content_id", "creator_id", "price_per_second", "fee_bps", "status", "end_reason",
         "started_ms", "ended_ms", "billed_ms", "charged", "fee", "checkpoints", "window_end_ms", "held",
         "started_at", "ended_at"),
    )  # fmt: skip
    weights = [1 / (k + 1) ** 0.8 for k in range(len(items))]  # a few items earn most, as in life
    txn_id = entry_id = flushed = 0
    left = args.charges
    while left > 0:
        if txns.count - flushed >= 100_000:
            flushed = txns.count
            for copier in (txns, entries, usage, sessions):
                copier.flush()
        k = min(left, rng.randint(1, 19))
        left -= k
        sid, viewer = uuid.uuid4(), rng.choice(viewers)
        n = rng.choices(range(len(items)), weights)[0]
        item, price = items[n], prices[n]
        started = start_ms + rng.randrange(span_ms)
        usage.add(started, sid, item, creator.id, viewer, 1, 0, 0, 0, None)
        charged = fee_total = 0
        for cp in range(1, k + 1):
            at = started + cp * CHECKPOINT_MS
            gross = price * CHECKPOINT_MS // 1000
            fee = gross * FEE_BPS // 10_000
            txn_id += 1
            details = json.dumps(
                {"session_id": str(sid), "content_id": str(item), "checkpoint": cp, "billed_ms": cp * CHECKPOINT_MS}
            )
            txns.add(txn_id, f"stream:{sid}:{cp}", "charge", details, iso(at))
            for account, amount in ((wallet_ids[viewer], -gross), (earnings_id, gross - fee), (fees_id, fee)):
                entry_id += 1
                entries.add(entry_id, txn_id, account, amount, iso(at))
            usage.add(
                at, sid, item, creator.id, viewer, 0, CHECKPOINT_MS, gross, fee, k * CHECKPOINT_MS if cp == k else None
            )
            charged += gross
            fee_total += fee
        spent[viewer] += charged
        end = started + k * CHECKPOINT_MS
        sessions.add(
            sid, viewer, item, creator.id, price, FEE_BPS, "ended", "stopped", started, end, k * CHECKPOINT_MS,
            charged, fee_total, k, end, 0, iso(started), iso(end),
        )  # fmt: skip
    # Each viewer's wallet was funded (an adjustment) with what they spent and a little more.
    for vid in viewers:
        txn_id += 1
        amount = spent[vid] + 10_000_000
        txns.add(txn_id, f"bench-fund:{vid}", "adjustment", "{}", iso(start_ms))
        entry_id += 1
        entries.add(entry_id, txn_id, wallet_ids[vid], amount, iso(start_ms))
        entry_id += 1
        entries.add(entry_id, txn_id, adjust_id, -amount, iso(start_ms))
    for copier in (txns, entries, usage, sessions):
        copier.flush()

    deposits = Copier(
        conn,
        "stellar_deposits",
        ("operation_id", "tx_hash", "from_address", "amount", "status", "user_id", "created_at", "status_changed_at"),
    )  # fmt: skip
    for n, vid in enumerate(viewers):
        at = iso(start_ms + rng.randrange(span_ms))
        deposits.add(str(n + 1), f"{n:064x}", "G" + "A" * 55, 10_000_000 + n, "credited", vid, at, at)
    deposits.flush()
    batches = Copier(conn, "payout_batches", ("id", "status", "source_account", "created_at", "status_changed_at"))
    payouts = Copier(
        conn, "payouts", ("id", "creator_id", "destination", "amount", "status", "batch_id", "tx_hash", "created_at",
                          "status_changed_at"),
    )  # fmt: skip
    for month in range(1, 13):
        at = iso(start_ms + month * 30 * 86_400_000)
        batches.add(month, "confirmed", "G" + "B" * 55, at, at)
        payouts.add(uuid.uuid4(), creator.id, "G" + "C" * 55, 1_000_000_000, "paid", month, f"{month:064x}", at, at)
    batches.flush()
    payouts.flush()
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE ledger_accounts a SET balance = s.total FROM (SELECT account_id, sum(amount) AS total "
            "FROM ledger_entries GROUP BY account_id) s WHERE a.id = s.account_id"
        )
        for table in ("ledger_accounts", "ledger_transactions", "ledger_entries", "payout_batches"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cur.execute("ANALYZE")
    conn.commit()
    raw.close()
    top_item = items[0]
    return {"earnings": earnings_id, "fees": fees_id, "item": top_item, "usage_rows": usage.count}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99


def pg_cpu_seconds(app) -> float:
    """CPU time of the PostgreSQL backends serving the scratch database (same machine: read from /proc)."""
    with app.app_context():
        name = app.config["BENCH_DB"]
        pids = db.session.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = :db"), {"db": name}).all()
        db.session.rollback()
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def timed_call(client, url: str, headers: dict, repeat: int) -> list[float]:
    for _ in range(3):  # warm the connection pool and the plan cache
        reply = client.get(url, headers=headers)
        assert reply.status_code == 200, (url, reply.status_code, reply.get_data(as_text=True)[:300])
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        reply = client.get(url, headers=headers)
        reply.get_data()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def timed_sql(app, statements: list[tuple[str, dict]], repeat: int) -> list[float]:
    samples = []
    with app.app_context():
        for n in range(repeat + 1):
            started = time.perf_counter()
            for sql, params in statements:
                db.session.execute(text(sql), params).all()
            if n:  # the first run warms the cache
                samples.append((time.perf_counter() - started) * 1000)
            db.session.rollback()
    return samples


NAIVE_SERIES = """
SELECT date_trunc(:unit, t.created_at AT TIME ZONE :tz) AS bucket, sum(e.amount)
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE e.account_id = :account AND t.kind = 'charge' AND t.created_at >= :start AND t.created_at < :end
GROUP BY bucket ORDER BY bucket
"""
NAIVE_TOP = """
SELECT t.details->>'content_id' AS item, sum(e.amount) AS earned
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE e.account_id = :account AND t.kind = 'charge' AND t.created_at >= :start AND t.created_at < :end
GROUP BY item ORDER BY earned DESC LIMIT 10
"""
NAIVE_ITEM = """
SELECT date_trunc(:unit, t.created_at AT TIME ZONE :tz) AS bucket, sum(e.amount)
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE e.account_id = :account AND t.kind = 'charge' AND t.details->>'content_id' = :item
  AND t.created_at >= :start AND t.created_at < :end
GROUP BY bucket ORDER BY bucket
"""


def scenarios(facts: dict, creator_id: str) -> list[dict]:
    year = {"from": YEAR_START.date().isoformat(), "to": (YEAR_END.date() - timedelta(days=1)).isoformat()}
    month = {"from": (YEAR_END.date() - timedelta(days=30)).isoformat(), "to": year["to"]}

    def span(period: dict, tz: str) -> dict:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(tz)
        first, last = (datetime.fromisoformat(period[k]).replace(tzinfo=zone) for k in ("from", "to"))
        return {"start": first, "end": last + timedelta(days=1), "tz": tz}

    def call(name, path, who, period, tz, granularity, naive):
        query = "&".join(f"{k}={v}" for k, v in {**period, "tz": tz, "granularity": granularity}.items())
        return {"name": name, "url": f"/api/v1/analytics/{path}?{query}", "who": who, "naive": naive}

    unit = {"day": "day", "week": "week", "month": "month"}
    earn, fees, item = facts["earnings"], facts["fees"], str(facts["item"])
    return [
        call("creator, year by day, UTC", "creator", "creator", year, "UTC", "day", [
            (NAIVE_SERIES, {"unit": unit["day"], "account": earn, **span(year, "UTC")}),
            (NAIVE_TOP, {"account": earn, **span(year, "UTC")}),
        ]),
        call("creator, year by week, Asia/Kolkata", "creator", "creator", year, "Asia/Kolkata", "week", [
            (NAIVE_SERIES, {"unit": unit["week"], "account": earn, **span(year, "Asia/Kolkata")}),
            (NAIVE_TOP, {"account": earn, **span(year, "Asia/Kolkata")}),
        ]),
        call("creator, 30 days by day, America/St_Johns", "creator", "creator", month, "America/St_Johns", "day", [
            (NAIVE_SERIES, {"unit": unit["day"], "account": earn, **span(month, "America/St_Johns")}),
            (NAIVE_TOP, {"account": earn, **span(month, "America/St_Johns")}),
        ]),
        call("top item, year by month, Asia/Tokyo", f"content/{item}", "creator", year, "Asia/Tokyo", "month", [
            (NAIVE_ITEM, {"unit": unit["month"], "account": earn, "item": item, **span(year, "Asia/Tokyo")}),
        ]),
        call("platform, year by month, UTC", "platform", "admin", year, "UTC", "month", [
            (NAIVE_SERIES, {"unit": unit["month"], "account": fees, **span(year, "UTC")}),
            (NAIVE_TOP, {"account": earn, **span(year, "UTC")}),
        ]),
        call("platform, 30 days by day, Europe/Berlin", "platform", "admin", month, "Europe/Berlin", "day", [
            (NAIVE_SERIES, {"unit": unit["day"], "account": fees, **span(month, "Europe/Berlin")}),
            (NAIVE_TOP, {"account": earn, **span(month, "Europe/Berlin")}),
        ]),
    ]  # fmt: skip


def exists(name: str) -> bool:
    found = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", os.environ.get("PGUSER", "postgres"), "-d", "postgres", "-Atc",
         f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return found.stdout.strip() == "1"


def reopen(app) -> tuple:
    """A database kept by an earlier --keep run: its people and facts, read back."""
    with app.app_context():
        upgrade()  # a newer migration since then applies to it as to production
        who = {u.username: u for u in db.session.scalars(select(User).where(User.username.like("bench-%")))}
        headers = {
            "creator": {"Authorization": f"Bearer {tokens.issue_pair(who['bench-creator'])['access_token']}"},
            "admin": {"Authorization": f"Bearer {tokens.issue_pair(who['bench-admin'])['access_token']}"},
        }
        accounts = dict(
            db.session.execute(
                text("SELECT kind, id FROM ledger_accounts WHERE kind IN ('creator_earnings', 'platform_fees')")
            ).all()
        )
        item = db.session.scalar(text("SELECT id FROM content WHERE title = 'Item 0'"))
        facts = {"earnings": accounts["creator_earnings"], "fees": accounts["platform_fees"], "item": item}
        db.session.remove()
    print(f"{app.config['BENCH_DB']}: kept from an earlier run (--reuse)", flush=True)
    return app, headers, facts


def build(charges: int, args) -> tuple:
    """A scratch database with `charges` charges, folded by the real fold: (app, headers, facts)."""
    name = f"{DB}_{charges}"
    user = os.environ.get("PGUSER", "postgres")
    reuse = args.reuse and exists(name)
    if not reuse:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        psql(f"CREATE DATABASE {name}")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg2://{user}@127.0.0.1:5432/{name}",
            "REDIS_URL": None,
            "LOG_LEVEL": "WARNING",
            "EMBEDDED_WORKER": False,
            "RATELIMIT_ENABLED": False,
            "JWT_ACCESS_TOKEN_EXPIRES": timedelta(hours=12),  # a 1,000,000-charge load outlasts 15 minutes
        }
    )
    app.config["BENCH_DB"] = name
    if reuse:
        return reopen(app)
    with app.app_context():
        upgrade()
        creator = User(email="creator@bench.test", username="bench-creator", password_hash="-", role=Role.CREATOR)
        admin = User(email="admin@bench.test", username="bench-admin", password_hash="-", role=Role.ADMIN)
        db.session.add_all([creator, admin])
        db.session.commit()
        headers = {
            "creator": {"Authorization": f"Bearer {tokens.issue_pair(creator)['access_token']}"},
            "admin": {"Authorization": f"Bearer {tokens.issue_pair(admin)['access_token']}"},
        }
        started = time.perf_counter()
        facts = load(app, creator, argparse.Namespace(**{**vars(args), "charges": charges}))
        load_s = time.perf_counter() - started
        db.session.remove()
        started = time.perf_counter()
        folded = fold.fold()
        fold_s = time.perf_counter() - started
        db.session.remove()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))  # what autovacuum does in production: fresh stats and visibility
        sizes = dict(
            db.session.execute(
                text(
                    "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE relname IN ('analytics_rollups', "
                    "'analytics_viewers', 'analytics_viewer_days', 'analytics_retention', 'ledger_entries')"
                )
            ).all()
        )
        db.session.remove()
    print(
        f"{charges:,} charges ({facts['usage_rows']:,} usage rows) on {args.items:,} items, {args.viewers:,} "
        f"viewers: loaded with COPY in {load_s:.0f} s; the real fold folded {folded:,} rows in {fold_s:.0f} s "
        f"({folded / max(fold_s, 1e-9):,.0f} rows/s)"
    )
    print("  table rows: " + ", ".join(f"{k} {v:,}" for k, v in sorted(sizes.items())), flush=True)
    return app, headers, facts


def measure(app, headers: dict, facts: dict, args) -> list[tuple]:
    """p50/p99 of each call, its CPU per call (the app's, PostgreSQL's), and the naive GROUP BY's p50/p99."""
    client = app.test_client()
    rows = []
    for n, case in enumerate(scenarios(facts, "")):
        cpu, pg = time.process_time(), pg_cpu_seconds(app)
        api = percentiles(timed_call(client, case["url"], headers[case["who"]], args.repeat))
        calls = args.repeat + 3
        cpu_ms = ((time.process_time() - cpu) * 1000 / calls, (pg_cpu_seconds(app) - pg) * 1000 / calls)
        naive = percentiles(timed_sql(app, case["naive"], args.naive_repeat))
        rows.append((case["name"], api, cpu_ms, naive))
        if args.profile:
            profile(client, case, headers[case["who"]], Path(args.profile) / f"{app.config['BENCH_DB']}-{n}.txt")
    return rows


def profile(client, case: dict, headers: dict, path: Path) -> None:
    """Where one call's time goes (pyinstrument, 20 calls), written to `path`."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    with profiler:
        for _ in range(20):
            client.get(case["url"], headers=headers).get_data()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{case['name']}: {case['url']}\n" + profiler.output_text(color=False, show_all=False))


def report(results: dict[int, list[tuple]]) -> None:
    sizes = list(results)
    names = [r[0] for r in results[sizes[0]]]
    width = max(len(n) for n in names)
    head = "".join(f" | {f'{c:,} charges':^43}" for c in sizes)
    print(f"\n{'':<{width}}{head}")
    cols = f"{'p50':>6} {'p99':>6} {'app':>5} {'db':>5} {'naive50':>8} {'naive99':>8}"
    print(f"{'call (ms)':<{width}}" + f" | {cols}" * len(sizes) + " | goal p99 < 50 ms")
    for i, name in enumerate(names):
        line, worst = f"{name:<{width}}", 0.0
        for c in sizes:
            _, (p50, p99), (app_ms, db_ms), (n50, n99) = results[c][i]
            line += f" | {p50:6.1f} {p99:6.1f} {app_ms:5.1f} {db_ms:5.1f} {n50:8.1f} {n99:8.1f}"
            worst = max(worst, p99)
        print(line + (" | met" if worst < GOAL_MS else f" | missed by {worst - GOAL_MS:.1f} ms"))
    print("app, db: the CPU per call of the app and of its PostgreSQL backends, what a call costs whatever the load")
    if len(sizes) > 1:
        growth = [results[sizes[-1]][i][1][0] / results[sizes[0]][i][1][0] for i in range(len(names))]
        print(f"p50 at {sizes[-1]:,} over p50 at {sizes[0]:,} charges: " + ", ".join(f"{g:.2f}x" for g in growth))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--charges", default="100000,1000000", help="charges (checkpoints) over the year; a list runs each size"
    )
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--viewers", type=int, default=5_000)
    # 200: the p99 of 50 calls would be their slowest one, whatever the machine did in that moment
    parser.add_argument("--repeat", type=int, default=200, help="timed calls of each dashboard call")
    parser.add_argument("--naive-repeat", type=int, default=3, help="timed runs of each naive GROUP BY")
    parser.add_argument("--profile", metavar="DIR", help="write a pyinstrument profile of each call here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument("--reuse", action="store_true", help="time the databases an earlier --keep run left")
    args = parser.parse_args()

    results = {}
    for charges in (int(c) for c in args.charges.split(",")):
        app = None
        try:
            app, headers, facts = build(charges, args)
            load1 = os.getloadavg()[0]
            results[charges] = measure(app, headers, facts, args)
            print(f"  load average (1 min) before its timed calls: {load1:.2f}; after: {os.getloadavg()[0]:.2f}")
        finally:
            if app is not None:
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
            if not (args.keep or args.reuse):
                psql(f"DROP DATABASE IF EXISTS {DB}_{charges} WITH (FORCE)")
    report(results)


if __name__ == "__main__":
    main()

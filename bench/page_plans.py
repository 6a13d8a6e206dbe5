"""What an uncached catalogue page costs PostgreSQL: the app's statement as sent today, against the same statement
prepared on the server (PostgreSQL's own choice of plan, then the generic plan forced), in the same run.

    .venv/bin/python bench/page_plans.py [--pages 2000] [--items 10000] [--sort price]

It creates a scratch database (streampay_bench_plans), applies the migrations and inserts the catalogue benchmark's
catalogue (bench/catalogue.py), then reads --pages pages of one sort order at random offsets, one connection, no
transaction around them (as an anonymous page is read), and prints, per page, the backend's CPU (from /proc) and the
wall time, with each variant's ratio to the plain statement. The database is dropped again at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import catalogue  # noqa: E402 (the migrations and the catalogue of the catalogue benchmark)

from streampay.sandbox import scratch  # noqa: E402


def page_statement(sort: str) -> str:
    """The app's page statement for `sort` (everyone's view, no filter), with $1 the limit and $2 the offset."""
    from sqlalchemy.dialects import postgresql

    from streampay.content import service

    _, page = service._listing(sort, None, frozenset())
    marked = page.params(limit=987_654_321, offset=123_456_789)  # values no catalogue has, swapped for $1 and $2
    sql = str(marked.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return sql.replace("987654321", "$1").replace("123456789", "$2")


def measure(cursor, pid: int, pages: int, run_one, seed: int) -> tuple[float, float]:
    """(backend CPU ms, wall ms) per page over `pages` pages at random offsets."""
    rng = random.Random(seed)

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")

    for _ in range(50):  # warm: the catalogue's pages in shared buffers, the backend's catalog caches filled
        run_one(rng.randrange(0, 9_990))
    cpu_before, wall_before = cpu(), time.perf_counter()
    for _ in range(pages):
        run_one(rng.randrange(0, 9_990))
    return 1000 * (cpu() - cpu_before) / pages, 1000 * (time.perf_counter() - wall_before) / pages


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--sort", default="price", choices=catalogue.SORTS)
    scratch.add_options(parser, "streampay_bench_plans")
    args = parser.parse_args(argv)
    import psycopg2

    url = scratch.database_url(args.pg, args.db_name)
    os.environ.update({"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "EMBEDDED_WORKER": "false"})
    with scratch.scratch_database(args.pg, args.db_name):
        catalogue.migrate_and_seed(args.items, 1)
        sql = page_statement(args.sort)
        conn = psycopg2.connect(url)
        conn.autocommit = True
        try:
            cur = conn.cursor()
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]

            def plain(offset):
                cur.execute(sql.replace("$1", "%s").replace("$2", "%s"), (10, offset))
                cur.fetchall()

            def prepared(offset):
                cur.execute("EXECUTE page(10, %s)", (offset,))
                cur.fetchall()

            rows = [("plain statement (today)", measure(cur, pid, args.pages, plain, 1))]
            cur.execute(f"PREPARE page(bigint, bigint) AS {sql}")
            rows.append(("prepared, PostgreSQL's choice of plan", measure(cur, pid, args.pages, prepared, 1)))
            cur.execute("DEALLOCATE page")
            cur.execute("SET plan_cache_mode = force_generic_plan")
            cur.execute(f"PREPARE page(bigint, bigint) AS {sql}")
            rows.append(("prepared, generic plan forced", measure(cur, pid, args.pages, prepared, 1)))
        finally:
            conn.close()
    print(f"{args.pages} pages of sort={args.sort} at random offsets of {args.items} items, one connection")
    print(f"{'statement':40} {'backend CPU ms':>15} {'x plain':>8} {'wall ms':>8} {'x plain':>8}")
    base_cpu, base_wall = rows[0][1]
    for name, (cpu_ms, wall_ms) in rows:
        print(f"{name:40} {cpu_ms:15.3f} {cpu_ms / base_cpu:8.2f} {wall_ms:8.3f} {wall_ms / base_wall:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

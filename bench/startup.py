"""How long a `flask` command takes to answer, against the goal of under a second.

    .venv/bin/python bench/startup.py [--runs 10] [--no-postgres]

Runs each command N times as a person types it (a fresh process in the checkout, so `.flaskenv`
applies), round-robin so that a change in the machine's load falls on every command alike, and
prints the median and p90 wall time and the median CPU time (user + system) of each: on the
embedded default (SQLite in a scratch instance folder, the in-process Redis) and with DATABASE_URL
set to a scratch PostgreSQL database (created, migrated and dropped here), beside two baselines
measured in the same run: `python -c pass` and `python -c "import flask"`. The machine's load
average is printed before and after: wall time on a busy machine is mostly waiting for a core.

Every command runs once untimed first, so Python's bytecode cache is written as it is on a
person's machine (PYTHONDONTWRITEBYTECODE is dropped from the commands' environment).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DB = "streampay_bench_startup"
GOAL_SECONDS = 1.0
BASELINES = (
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ('python -c "import flask"', [sys.executable, "-c", "import flask"]),
)
COMMANDS = (
    ("flask --help", ["--help"]),
    ("flask ledger check", ["ledger", "check"]),
    ("flask users list", ["users", "list"]),
    ("flask db current", ["db", "current"]),
)


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", os.environ.get("PGUSER", "postgres"), "-d", "postgres", "-qc", sql],
        check=True,
        capture_output=True,
    )


def environment(instance: str, database_url: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PYTHONDONTWRITEBYTECODE")}
    env.update(INSTANCE_PATH=instance, LOG_LEVEL="WARNING")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def run(argv: list[str], env: dict) -> tuple[float, float]:
    """One run: wall seconds and CPU seconds (user + system) of the process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def measure(columns: dict[str, dict], runs: int) -> dict:
    """{(row, column): [(wall, cpu), ...]}, every (row, column) run once untimed, then `runs` times in turn."""
    cases = [(label, None, argv) for label, argv in BASELINES]
    cases += [(label, column, [str(BIN / "flask"), *args]) for label, args in COMMANDS for column in columns]
    samples: dict = {(label, column): [] for label, column, _ in cases}
    default_env = environment(next(iter(columns.values()))["instance"], None)
    for round_ in range(runs + 1):
        for label, column, argv in cases:
            env = default_env if column is None else columns[column]["env"]
            timing = run(argv, env)
            if round_:
                samples[(label, column)].append(timing)
    return samples


def cell(timings: list[tuple[float, float]]) -> tuple[str, float]:
    walls = [w for w, _ in timings]
    median = statistics.median(walls)
    cpu = statistics.median(c for _, c in timings)
    return f"{median:.2f} | {p90(walls):.2f} | {cpu:.2f}", median


def report(samples: dict, columns: list[str], runs: int, load: tuple) -> None:
    print(f"\n{runs} runs each; {os.cpu_count()} cores; load average (1, 5, 15 min) {load[0]} before, {load[1]} after")
    header = "| command |" + "".join(f" {c}: median s | p90 s | CPU s |" for c in columns) + " goal (< 1 s median) |"
    print(header)
    print("|---|" + "---|---|---|" * len(columns) + "---|")
    for label, _ in BASELINES:
        text, _ = cell(samples[(label, None)])
        print(f"| {label} |" + f" {text} |" * len(columns) + " baseline |")
    for label, _ in COMMANDS:
        texts, medians = zip(*(cell(samples[(label, c)]) for c in columns), strict=True)
        verdict = "met" if max(medians) < GOAL_SECONDS else "missed"
        print(f"| `{label}` |" + "".join(f" {t} |" for t in texts) + f" {verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-postgres", action="store_true", help="only the embedded default")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        columns = {"embedded": {"instance": os.path.join(scratch, "embedded")}}
        if not args.no_postgres:
            user = os.environ.get("PGUSER", "postgres")
            psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            psql(f"CREATE DATABASE {DB}")
            columns["PostgreSQL"] = {
                "instance": os.path.join(scratch, "postgres"),
                "url": f"postgresql://{user}@127.0.0.1:5432/{DB}",
            }
        try:
            for column in columns.values():
                column["env"] = environment(column["instance"], column.get("url"))
                run([str(BIN / "flask"), "db", "upgrade"], column["env"])  # the commands answer from a schema
            before = tuple(round(x, 2) for x in os.getloadavg())
            samples = measure(columns, args.runs)
            after = tuple(round(x, 2) for x in os.getloadavg())
        finally:
            if not args.no_postgres:
                psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    report(samples, list(columns), args.runs, (before, after))


if __name__ == "__main__":
    main()

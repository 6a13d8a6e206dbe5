"""This process's Prometheus metrics (HTTP, sockets, heartbeats, sessions, money charged).

Under gunicorn every worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR
(prometheus-client's multiprocess mode), so a scrape of any worker adds up all of them. The
scrape itself, and what is read from shared state, is streampay/analytics/metrics.py.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter("streampay_http_requests", "HTTP requests answered.", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "streampay_http_request_duration_seconds", "Time to answer.", ["method", "route"], buckets=LATENCY_BUCKETS
)
WEBSOCKETS = Gauge("streampay_websockets_open", "Player sockets open now.", multiprocess_mode="livesum")
WS_REFUSED = Counter(
    "streampay_websockets_refused_total",
    "Player sockets refused with 503 before the upgrade: full (the cap), slow (the loop runs late), strained (a "
    "heartbeat waited for the meter in the last second), busy (no free database connection).",
    ["why"],
)
WS_SHED = Counter(
    "streampay_websockets_shed_total",
    "Player sockets closed with 1013 (try again later) because the loop ran late past WS_SHED_LAG_MS.",
)
STOPS_SETTLED_LATER = Counter(
    "streampay_stops_settled_later_total",
    "stopStreams answered at once and settled by a job: every settlement turn of the web process stayed taken.",
)
HEARTBEATS = Histogram(
    "streampay_heartbeat_duration_seconds", "Heartbeats handled, and the time each took.", buckets=LATENCY_BUCKETS
)
SESSIONS_STARTED = Counter("streampay_sessions_started", "Streaming sessions started.")
SESSIONS_ENDED = Counter("streampay_sessions_ended", "Streaming sessions ended, by reason.", ["reason"])
CHECKPOINTS = Counter("streampay_checkpoints", "Checkpoints settled (a charge posted, or a session closed).")
CHARGED = Counter("streampay_charged_stroops", "Stroops charged to viewers.")
CATALOGUE_PAGES = Counter(
    "streampay_catalogue_pages",
    "Catalogue pages everyone sees alike, by where they were read: cache (Redis's page cache), held (the web "
    "process's listings), database.",
    ["source"],
)
DEPENDENCY_ERRORS = Counter("streampay_dependency_errors", "Requests refused for a dependency down.", ["dependency"])


def settled(charge: int, ended: str | None = None) -> None:
    """A checkpoint committed: what it charged, and why the session ended if it did."""
    CHECKPOINTS.inc()
    if charge > 0:
        CHARGED.inc(charge)
    if ended is not None:
        SESSIONS_ENDED.labels(ended).inc()


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"  # never the raw path: one series per route


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _record(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is not None:
        route = _route()
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        if response.status_code == 503 and response.is_json:  # the one error shape names the dependency
            dependency = ((response.get_json(silent=True) or {}).get("errors") or {}).get("dependency")
            if dependency:
                dependency_down(dependency)
    return response


def dependency_down(name: str) -> None:
    """Count a request or heartbeat refused because Redis or the database did not answer."""
    DEPENDENCY_ERRORS.labels("redis" if name == "redis" else "postgresql").inc()


def init_app(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_record)


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit: a dead worker's live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)

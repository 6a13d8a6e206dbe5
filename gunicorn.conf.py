"""gunicorn settings for the web dyno, from the environment.

The web dyno holds thousands of WebSockets: gevent workers give each socket a greenlet, not an
OS thread, so a worker process holds WEB_CONNECTIONS sockets on one core.

PostgreSQL calls yield to the other greenlets while they wait (psycogreen's wait callback): a
blocking call would stop every socket of the worker for as long as PostgreSQL takes to answer,
and on a busy host that is what made held sockets miss their heartbeats while others opened or
stopped. A transaction may now pause between its statements, so its row locks are held across
other greenlets' turns: transactions stay a few statements long, and no code path waits on Redis
or a socket while it holds a row lock. Past WS_MAX_SOCKETS_PER_WORKER a worker refuses new
sockets with 503 before the upgrade, below WEB_CONNECTIONS, so a full worker still answers; it
refuses them too while its loop runs late or all its database connections are in use.
"""

import multiprocessing
import os

import gunicorn.http.wsgi

# Replies name no server software or version (gunicorn's own Server header is its name).
gunicorn.http.wsgi.SERVER = "streampay"

# A web worker's database work: a few transactions at once (the pool), never the whole worker. Under load each
# statement of a transaction waits a turn of the loop, so a startStream (ten round trips) holds its connection for
# ten turns: eight connections keep 50 starts a second per worker from queueing for the pool. Settlements, which all
# end on the same shared rows and past a few at once only queue on each other's row locks, take at most four of
# them (streampay.streaming.service.SETTLEMENTS_AT_ONCE).
os.environ.setdefault("DB_POOL_SIZE", "8")
os.environ.setdefault("DB_MAX_OVERFLOW", "0")

bind = f"0.0.0.0:{os.environ.get('PORT', '3000')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "10000"))
# Idle sockets are kept alive by WebSocket pings; plain HTTP keep-alive stays short.
keepalive = 5
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "0"))
accesslog = None  # the app writes JSON access lines itself
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


# Each worker's count of sockets, one slot each, shared with its siblings (streampay.streaming.siblings): a full
# worker tells a player to come back soon when a sibling has room, later when the whole dyno is full, and stops
# accepting while a sibling whose loop turns (its stamp, time.monotonic()) has room.
_SOCKET_COUNTS = multiprocessing.RawArray("i", workers)
_LOOP_STAMPS = multiprocessing.RawArray("d", workers)


def pre_fork(server, worker):
    taken = {getattr(w, "socket_slot", None) for w in server.WORKERS.values()}
    worker.socket_slot = next((i for i in range(len(_SOCKET_COUNTS)) if i not in taken), None)


def post_fork(server, worker):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    if worker.socket_slot is not None:  # None: a worker past WEB_CONCURRENCY (TTIN) has no siblings to tell of
        from streampay.streaming import siblings

        siblings.share(_SOCKET_COUNTS, _LOOP_STAMPS, worker.socket_slot)
        _listen_as_sibling()


def _listen_as_sibling() -> None:
    """gevent's listening servers of this worker, told to siblings once started, so a full worker can pause one."""
    import gunicorn.workers.ggevent as ggevent

    from streampay.streaming import siblings

    class Listener(ggevent.StreamServer):
        def start(self):
            super().start()
            siblings.listen_on(self)

    ggevent.StreamServer = Listener


def post_request(worker, req, environ, resp):
    # A keep-alive connection whose next request is already waiting would be served again at once, ahead of the
    # worker's other connections: its greenlet never blocks, so it never yields. Yielding after each request
    # serves them in turn. /healthz at 32 clients (bench/catalogue.py): p99 75 ms where it was 260-380 ms, for
    # 12 % fewer requests a second.
    import gevent

    gevent.sleep(0)


def post_worker_init(worker):
    # Thousands of sockets mean millions of long-lived objects, and a collection stops every socket of
    # the worker for as long as it walks its generations (about a microsecond an object on a busy
    # host). What the worker built at boot is frozen out of the collections. A young collection
    # walks at most 10,000 objects and the middle generation at most five times that, so each stop is
    # tens of milliseconds: with 50,000 and 20, opening 10,000 sockets stopped a worker for 100-400 ms
    # at each young collection and 1.2-1.3 s at the middle one, and heartbeats waited past
    # METER_TIMEOUT_MS. Full collections come only when a good part of the heap is new since the last
    # one, as CPython decides.
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 5, 10)
    if getattr(worker, "socket_slot", None) is not None:
        _freeze_as_sockets_grow(_SOCKET_COUNTS, worker.socket_slot)
        _stamp_as_the_loop_turns()
    gc.callbacks.append(_collection_timer(worker.log, int(os.environ.get("WEB_GC_WARN_MS", "100")) / 1000))
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def _freeze_as_sockets_grow(counts, slot: int, step: int = 500) -> None:
    """Each time the worker holds `step` more sockets than it ever did, freeze what it holds out of the collections.

    A full collection walks every object of every socket: CPython makes one whenever the heap has grown by a
    quarter, and while 5,000 players opened, one stopped a worker for 1.1 s, and heartbeats queued behind it past
    METER_TIMEOUT_MS. A held socket's objects live as long as it and are freed by their reference counts when it
    closes (it leaves no cycle), so frozen they cost nothing. What was mid-request at a freeze and dies in a cycle
    stays frozen: a few hundred objects per freeze, and a worker freezes at most cap / step times (new highs only).
    """
    import gc

    import gevent

    def watch():
        high = 0
        while True:
            gevent.sleep(1)
            if counts[slot] >= high + step:
                high = counts[slot]
                gc.freeze()

    gevent.spawn(watch)


def _stamp_as_the_loop_turns() -> None:
    """Tell the siblings, every STAMP_SECONDS, that this worker's loop turns (and step aside or back as they stand)."""
    import gevent

    from streampay.streaming import siblings

    def turn():
        while True:
            siblings.stamp()
            gevent.sleep(siblings.STAMP_SECONDS)

    gevent.spawn(turn)


def _collection_timer(log, warn_after: float):
    """A gc callback that logs every collection that stopped the worker longer than `warn_after` seconds
    (WEB_GC_WARN_MS): every socket of the worker waited that long."""
    import contextlib
    import time

    import gevent

    began = {}

    def timed(phase, info):
        if phase == "start":
            began["at"] = time.perf_counter()
        elif "at" in began and (took := time.perf_counter() - began.pop("at")) > warn_after:
            # Logged from the event loop, not here: a collection can run in a greenlet being finalized, where
            # logging (which asks for the current thread) fails.
            with contextlib.suppress(Exception):
                gevent.get_hub().loop.run_callback(
                    log.warning,
                    "a garbage collection of generation %d stopped this worker for %.0f ms (%d objects freed)",
                    info["generation"],
                    took * 1000,
                    info["collected"],
                )

    return timed


def on_starting(server):
    # Without REDIS_URL each worker would keep a Redis of its own: sessions, limits and jobs split
    # between them. Share the embedded one of a running `python wsgi.py`, or refuse.
    if os.environ.get("REDIS_URL") or os.environ.get("REDIS_HOST"):
        return
    from streampay.embedded import discover_from_environment

    url = discover_from_environment()
    if url is None:
        raise SystemExit(
            "gunicorn needs REDIS_URL, or a running `python wsgi.py` of this checkout whose embedded Redis it shares"
        )
    os.environ["REDIS_URL"] = url
    server.log.info("using the embedded Redis of the running `python wsgi.py` at %s", url)


# /metrics adds up every worker's samples (prometheus-client's multiprocess mode): the workers write them to
# files in one directory, made empty when the server starts, and a dead worker's live gauges are dropped.
def _metrics_directory() -> None:
    import glob
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"streampay-metrics-{os.getpid()}"
    )
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):  # a previous server's samples
        os.remove(stale)


_metrics_directory()


def child_exit(server, worker):
    from streampay.metrics import worker_exited

    worker_exited(worker.pid)
    if getattr(worker, "socket_slot", None) is not None:
        _SOCKET_COUNTS[worker.socket_slot] = 0  # its sockets are gone with it
        _LOOP_STAMPS[worker.socket_slot] = 0.0

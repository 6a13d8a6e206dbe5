"""Faults to inject on real processes, for the fault tests and `bench/chaos.py`.

- `RedisServer`: a redis-server of its own on a free loopback port, without persistence, that can be
  killed with SIGKILL and started again on the same port (empty, as a real restart without persistence is).
- `TcpCut`: a loopback TCP forwarder in front of PostgreSQL; `cut()` drops every connection through it and
  refuses new ones (PostgreSQL unreachable, for the processes pointed at it), `mend()` lets them through again.
- `terminate_backends`: `pg_terminate_backend` on the connections of one database (ours, never anyone else's).
- `Dyno`: a Procfile line as a subprocess of its own process group.
- `Starved`: a process run in slices, stopped most of the time (a host giving it less CPU than it needs).

None of it touches the shared PostgreSQL server or Redis: the Redis is a private one, and PostgreSQL only
loses connections to a database of the caller's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, seconds: float = 30.0, every: float = 0.1):
    """`check()`'s first truthy answer within `seconds`, else None."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result or None
        time.sleep(every)


class RedisServer:
    """`with RedisServer() as r:` a private redis-server; `r.kill()` is kill -9, `r.start()` brings it back empty."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="streampay-redis-")
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", self.dir, "--logfile", "", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_for(self.answers, 10):
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, nothing saved."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self, down_for: float = 0.0) -> None:
        self.kill()
        time.sleep(down_for)
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class TcpCut:
    """A loopback forwarder to `target` (host, port) that can be cut: `cut()` closes every connection through it
    and refuses new ones until `mend()`."""

    def __init__(self, target: tuple[str, int], port: int | None = None):
        self.target = target
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.listener: socket.socket | None = None

    def url_for(self, url: str) -> str:
        """`url` (postgresql://user@host:port/db) pointed at this forwarder."""
        scheme, rest = url.split("://", 1)
        auth, _, hostpath = rest.rpartition("@")
        path = hostpath.split("/", 1)[1]
        return f"{scheme}://{auth + '@' if auth else ''}127.0.0.1:{self.port}/{path}"

    def mend(self) -> TcpCut:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            doomed, self.sockets = self.sockets, set()
        if listener is not None:
            listener.close()
        for s in doomed:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self.sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self.lock:
                self.sockets -= {src, dst}
            for s in (src, dst):  # the other direction's recv has been woken by the shutdown
                s.close()

    def __enter__(self) -> TcpCut:
        return self.mend()

    def __exit__(self, *exc) -> None:
        self.cut()


def terminate_backends(admin_url: str, database: str, where: str = "true") -> int:
    """pg_terminate_backend on the other connections to `database` (only ever the caller's own); how many.

    `admin_url`: a libpq URL of the server (postgresql://user@host:port/postgres).
    """
    import psycopg2

    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                f" WHERE datname = %s AND pid <> pg_backend_pid() AND ({where})",
                (database,),
            )
            return cur.fetchone()[0]
    finally:
        conn.close()


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


class Dyno:
    """A Procfile line as a subprocess (its own process group), with `env` over the caller's environment."""

    def __init__(self, name: str, log_path: str | None = None, **env):
        self.name = name
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env}
        self.log_path = log_path or tempfile.mkstemp(prefix=f"streampay-{name}-", suffix=".log")[1]
        self.proc: subprocess.Popen | None = None

    def start(self) -> Dyno:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", "exec " + procfile()[self.name]],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        """The pids of the dyno's child processes (gunicorn's workers, RQ's work horse)."""
        if not self.alive():
            return []
        found = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def stop(self) -> str:
        """SIGTERM (then SIGKILL after 15 s) to the whole group; the log."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.log()

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def __enter__(self) -> Dyno:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Starved:
    """While the block runs, `pid` runs `run_ms` then stops `stopped_ms` (SIGSTOP, SIGCONT), again and again: from
    inside, every wake-up of its event loop comes late, as on a host that gives it less CPU than its work needs."""

    def __init__(self, pid: int, run_ms: int = 20, stopped_ms: int = 150):
        self.pid, self.run, self.stopped = pid, run_ms / 1000, stopped_ms / 1000
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._slice, name="starve", daemon=True)

    def _slice(self) -> None:
        try:
            while not self.done.is_set():
                os.kill(self.pid, signal.SIGSTOP)
                time.sleep(self.stopped)
                os.kill(self.pid, signal.SIGCONT)
                time.sleep(self.run)
        finally:
            os.kill(self.pid, signal.SIGCONT)

    def __enter__(self) -> Starved:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

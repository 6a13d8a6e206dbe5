"""One Redis connection that every socket of a process shares for its heartbeats (auto-pipelining).

A socket handler queues its script call and waits; one sender thread (a greenlet under gevent)
writes everything queued in a single send and reads the replies back in order. While a round
trip is in flight the next calls queue up, so the busier the process, the more heartbeats share
a write: a heartbeat costs its command and its reply, not a pool checkout and a round trip of
its own. The sender exits after a quiet spell and starts again on the next call.
"""

from __future__ import annotations

import threading

import redis
from redis.exceptions import NoScriptError, ResponseError

IDLE_SECONDS = 30.0


class _Call:
    __slots__ = ("args", "done", "result", "error")

    def __init__(self, args: tuple):
        self.args = args
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None


class ScriptPipeline:
    """Calls of one Lua script, pipelined over one dedicated connection of `client`'s pool."""

    def __init__(self, client: redis.Redis, source: str, timeout: float):
        self.pool = client.connection_pool
        self.source = source
        self.sha = client.register_script(source).sha
        self.timeout = timeout
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.queue: list[_Call] = []
        self.sender: threading.Thread | None = None

    def __call__(self, keys: list[str], args: list) -> object:
        call = _Call(("EVALSHA", self.sha, len(keys), *keys, *args))
        with self.lock:
            self.queue.append(call)
            if self.sender is None:
                self.sender = threading.Thread(target=self._send_loop, name="redis-pipeline", daemon=True)
                self.sender.start()
            self.wake.notify()
        if not call.done.wait(self.timeout):
            raise redis.TimeoutError(f"no reply from Redis within {self.timeout:g} s")
        if call.error is not None:
            raise call.error
        return call.result

    def _next_batch(self) -> list[_Call] | None:
        with self.lock:
            if not self.queue:
                self.wake.wait(IDLE_SECONDS)
            if not self.queue:
                self.sender = None  # the next call starts a new sender
                return None
            batch, self.queue = self.queue, []
            return batch

    def _send_loop(self) -> None:
        conn = None
        try:
            while (batch := self._next_batch()) is not None:
                try:
                    conn = conn or self.pool.get_connection()
                    self._round_trip(conn, batch)
                except Exception as exc:  # the connection is in doubt: drop it, fail this batch
                    if conn is not None:
                        conn.disconnect()
                    for call in batch:
                        if not call.done.is_set():
                            call.error = exc
                            call.done.set()
        finally:
            if conn is not None:
                self.pool.release(conn)

    def _round_trip(self, conn, batch: list[_Call]) -> None:
        conn.send_packed_command(conn.pack_commands([call.args for call in batch]))
        missing = []
        for call in batch:
            try:
                call.result = conn.read_response()
            except NoScriptError:
                missing.append(call)
                continue
            except ResponseError as exc:
                call.error = exc
            call.done.set()
        if missing:  # Redis restarted or was flushed: load the script once, then run these again
            conn.send_command("SCRIPT", "LOAD", self.source)
            conn.read_response()
            self._round_trip(conn, missing)

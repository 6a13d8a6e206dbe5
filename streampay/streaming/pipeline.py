"""One Redis connection that every socket of a process shares for the meter (auto-pipelining).

A caller queues its commands and waits; one sender thread (a greenlet under gevent) writes
everything queued in a single send and reads the replies back in order. While a round trip is in
flight the next calls queue up, so the busier the process, the more calls share a write: a
heartbeat costs its command and its reply, not a pool checkout and a round trip of its own, and
thousands of sockets never wait for one of the pool's connections. A caller's commands go out
back to back, so a MULTI ... EXEC of one caller is never split. The sender exits after a quiet
spell and starts again on the next call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import redis
from redis.exceptions import NoScriptError, ResponseError

IDLE_SECONDS = 30.0
Command = Sequence


class _Call:
    __slots__ = ("commands", "done", "replies", "error")

    def __init__(self, commands: tuple):
        self.commands = commands
        self.done = threading.Event()
        self.replies: list = []
        self.error: BaseException | None = None


class SharedConnection:
    def __init__(self, client: redis.Redis, timeout: float):
        self.client = client
        self.pool = client.connection_pool
        self.timeout = timeout
        self.scripts: dict[str, str] = {}  # sha -> source, to load again after a NOSCRIPT
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.queue: list[_Call] = []
        self.sender: threading.Thread | None = None

    def execute(self, *commands: Command) -> list:
        """Send `commands` back to back; their replies, in order (an error reply raises)."""
        call = _Call(commands)
        with self.lock:
            self.queue.append(call)
            if self.sender is None:
                self.sender = threading.Thread(target=self._send_loop, name="redis-shared", daemon=True)
                self.sender.start()
            self.wake.notify()
        if not call.done.wait(self.timeout):
            raise redis.TimeoutError(f"no reply from Redis within {self.timeout:g} s")
        if call.error is not None:
            raise call.error
        return call.replies

    def transaction(self, *commands: Command) -> list:
        """`commands` in one MULTI ... EXEC; their replies."""
        return self.execute(("MULTI",), *commands, ("EXEC",))[-1]

    def script(self, source: str) -> Callable[[list, list], object]:
        sha = self.client.register_script(source).sha
        self.scripts[sha] = source
        return lambda keys, args: self.execute(("EVALSHA", sha, len(keys), *keys, *args))[0]

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
        conn, batch = None, []
        try:
            while (batch := self._next_batch()) is not None:
                conn = conn or self.pool.get_connection()
                self._send_batch(conn, batch)
        except Exception as exc:  # no connection to be had: fail what waits; the next call starts afresh
            with self.lock:
                waiting, self.queue, self.sender = self.queue, [], None
            self._fail([*(batch or []), *waiting], exc)
        finally:
            if conn is not None:
                self.pool.release(conn)

    def _send_batch(self, conn, batch: list[_Call]) -> None:
        """One round trip; a connection lost on the way is reconnected and the batch sent once more.

        Sending twice is safe for what the meter sends: every command and script sets a value or
        removes a key (a second PUBLISH at worst repeats a push the player already ignores).
        """
        for attempt in (1, 2):
            try:
                self._round_trip(conn, batch)
                return
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                conn.disconnect()  # the next send reconnects
                if attempt == 2:
                    self._fail(batch, exc)
                    return
                for call in batch:
                    call.replies, call.error = [], None
            except Exception as exc:  # the connection is in doubt: drop it, fail this batch
                conn.disconnect()
                self._fail(batch, exc)
                return

    @staticmethod
    def _fail(batch: list[_Call], exc: BaseException) -> None:
        for call in batch:
            if not call.done.is_set():
                call.error = exc
                call.done.set()

    def _round_trip(self, conn, batch: list[_Call]) -> None:
        conn.send_packed_command(conn.pack_commands([command for call in batch for command in call.commands]))
        again = []
        for call in batch:
            for n, command in enumerate(call.commands):
                try:
                    call.replies.append(conn.read_response())
                except NoScriptError:
                    call.replies.append(None)
                    again.append((call, n, command))
                except ResponseError as exc:
                    call.replies.append(exc)
                    call.error = call.error or exc
        for call, n, command in again:  # Redis restarted or was flushed: load the script, run it again
            conn.send_command("SCRIPT", "LOAD", self.scripts[command[1]])
            conn.read_response()
            conn.send_command(*command)
            try:
                call.replies[n] = conn.read_response()
            except ResponseError as exc:
                call.error = call.error or exc
        for call in batch:
            call.done.set()

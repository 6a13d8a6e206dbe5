"""One Redis connection that every socket of a process shares for the meter (auto-pipelining).

A caller that finds the connection free leads the next round trip: it lets the loop take one turn
(under gevent, the other sockets whose frames arrived in the same turn queue their commands behind
it), then sends everything queued in one write and reads the replies. Under load that turns a
write, a read and a wake-up of Redis per heartbeat into one per batch; a quiet process pays one
greenlet switch. A caller that finds a round trip in flight queues its commands and waits; when the
round trip ends, its caller sends everything queued meanwhile in one write and hands the reading of
the replies to the first call of that batch. So the next round trip is already on its way while
that call waits for its turn to run (under gevent, a wake-up waits for the loop's other greenlets),
and the busier the process, the more calls share a write: a heartbeat costs its command and its
reply, not a pool checkout and a round trip of its own, and thousands of sockets never wait for one
of the pool's connections.
A caller's commands go out back to back, so a MULTI ... EXEC of one caller is never split.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence

import redis
from redis.exceptions import NoScriptError, ResponseError

Command = Sequence
log = logging.getLogger(__name__)


class _Call:
    __slots__ = ("commands", "done", "replies", "error", "leads", "batch", "sent")

    def __init__(self, commands: tuple):
        self.commands = commands
        self.done: threading.Event | None = None  # a waiting call's: set when its replies are in, or its turn has come
        self.replies: list = []
        self.error: BaseException | None = None
        self.leads = False
        self.batch: list[_Call] | None = None  # a leader's batch, when the previous leader took it from the queue
        self.sent = False  # ... and already sent it


class Tally:
    """Events and the ones that count against (calls answered and slow ones; handshakes and refusals), in this second
    and the one before (time.monotonic() whole seconds)."""

    __slots__ = ("second", "calls", "slow", "before")

    def __init__(self):
        self.second, self.calls, self.slow, self.before = 0, 0, 0, (0, 0)

    def _roll(self, now: float) -> None:
        second = int(now)
        if second != self.second:
            self.before = (self.calls, self.slow) if second == self.second + 1 else (0, 0)
            self.second, self.calls, self.slow = second, 0, 0

    def count(self, now: float, slow: bool) -> None:
        self._roll(now)
        self.calls += 1
        self.slow += slow

    def recent(self, now: float) -> tuple[int, int]:
        self._roll(now)
        return self.calls + self.before[0], self.slow + self.before[1]

    def against_per_second(self, now: float) -> float:
        """The ones that count against, a second, over this second so far and the one before."""
        return self.recent(now)[1] / (1 + now - int(now))


class SharedConnection:
    def __init__(
        self, client: redis.Redis, timeout: float, strained_after: float = math.inf, strained_share: float = 0.0
    ):
        self.client = client
        self.timeout = timeout  # for a reply, and for a waiting call's turn
        self.strained_after = strained_after  # a call that takes longer (its wait for a turn included) is slow ...
        self.strained_share = strained_share  # ... and more slow calls than this share of them is a strain
        self.tally = Tally()
        self.troubled_at = -math.inf  # the connection was last dropped then (lost, timed out, interrupted)
        self.scripts: dict[str, str] = {}  # sha -> source, to load again after a NOSCRIPT
        self.lock = threading.Lock()
        self.queue: list[_Call] = []
        self.busy = False  # a round trip is in flight, or its caller is handing the connection on
        self.conn = None
        self.pid = os.getpid()
        # For the log when calls wait too long: the last write to Redis and its size, the last batch fully read.
        self.sent_at, self.sent_calls, self.read_at, self.told_at = 0.0, 0, 0.0, -math.inf

    def execute(self, *commands: Command) -> list:
        """Send `commands` back to back; their replies, in order (an error reply raises)."""
        began = time.monotonic()
        replies = self._execute(_Call(commands))
        ended = time.monotonic()
        # Answered, but late, with the connection untroubled since well before: a wait of this process's own (or of a
        # Redis that answers slowly), not the reconnecting after an outage.
        self.tally.count(ended, ended - began > self.strained_after and began - self.troubled_at > self.timeout)
        return replies

    def strained(self) -> bool:
        """Whether more than `strained_share` of the calls answered in the last second or two took longer than
        `strained_after`, Redis up all along (a call that failed, or waited on a reconnection, tells of an outage, not
        of this process's load). One slow call among a thousand (a collection, a burst) is not a strain."""
        calls, slow = self.tally.recent(time.monotonic())
        return slow > calls * self.strained_share

    def _execute(self, call: _Call) -> list:
        with self.lock:
            self.queue.append(call)
            if self.busy:
                call.done = threading.Event()
            else:
                call.leads = self.busy = True
        if call.done is not None:
            try:
                arrived = call.done.wait(self.timeout)
            except BaseException:  # this greenlet was killed while it waited: it must not keep its turn
                self._leave(call, killed=True)
                raise
            if not arrived and not self._leave(call, killed=False):
                self._tell_of_waits()
                raise redis.TimeoutError(f"no reply from Redis within {self.timeout:g} s")
        if call.leads:
            if call.batch is None:  # a new round trip, not the replies of one already sent
                try:
                    time.sleep(0)  # one turn of the loop: what the other sockets send in it joins this round trip
                except BaseException:  # killed before its round trip: the turn passes to whoever queued meanwhile
                    self._leave(call, killed=True)
                    raise
            self._lead(call)
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

    def _leave(self, call: _Call, killed: bool) -> bool:
        """A waiting call gives up its place in the queue; True if its turn came meanwhile, so it leads after all.

        A killed caller cannot lead: a turn that came to it is passed on at once.
        """
        with self.lock:
            if call.leads and not killed:
                return True
            if call in self.queue:
                self.queue.remove(call)
        if call.leads:
            if call.sent and self.conn is not None:  # its batch went out and nobody will read the replies
                self._drop()
                self._fail(call.batch, redis.ConnectionError("the call reading this batch was interrupted"))
            self._hand_on()
        return False

    def _lead(self, call: _Call) -> None:
        """Send what is queued (this caller's call among it) in one round trip, or read the replies of the batch
        the previous leader sent, then hand the connection on."""
        batch, sent = call.batch, call.sent
        if batch is None:
            with self.lock:
                batch, self.queue = self.queue, []
        try:
            self._send_batch(batch, sent)
        except BaseException as exc:  # this greenlet was killed mid round trip: replies may be left unread
            if self.conn is not None:
                self._drop()
            self._fail(batch, redis.ConnectionError(f"round trip interrupted: {exc!r}"))
            raise
        finally:
            call.batch = None  # the batch holds this call: a cycle only a collection would free
            self._hand_on()

    def _hand_on(self) -> None:
        """The connection is free: send what queued meanwhile, and hand its replies to the first call of it."""
        with self.lock:  # held while sending, so a leaving call sees its batch as it is
            batch, self.queue = self.queue, []
            if not batch:
                self.busy = False
                return
            nxt, sent = batch[0], False
            nxt.batch, nxt.leads = batch, True
            try:
                self._send(self._connection(), batch)
                sent = True
            except Exception:  # noqa: BLE001, S110 (the leader sends it again, on a new connection)
                pass
            finally:
                if not sent and self.conn is not None:  # nothing, or part of a command, went out
                    self._drop()
                nxt.sent = sent
                nxt.done.set()

    def _drop(self) -> None:
        """Close the connection (the next send reconnects), and note when."""
        self.troubled_at = time.monotonic()
        if self.conn is not None:
            self.conn.disconnect()

    def close(self) -> None:
        """Close the connection; a later call opens another."""
        with self.lock:
            if self.conn is not None:
                self.conn.disconnect()
                self.conn = None

    def _connection(self):
        if self.conn is None or self.pid != os.getpid():  # made in each process, never inherited from a parent
            pool = self.client.connection_pool
            self.conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": self.timeout})
            self.pid = os.getpid()
        return self.conn

    def _send_batch(self, batch: list[_Call], sent: bool = False) -> None:
        """One round trip; a connection lost on the way is reconnected and the batch sent once more.

        Sending twice is safe for what the meter sends: every command and script sets a value or
        removes a key (a second PUBLISH at worst repeats a push the player already ignores).
        """
        for attempt in (1, 2):
            conn, began, cpu = None, time.monotonic(), time.process_time()
            try:
                conn = self._connection()
                if not (sent and attempt == 1):
                    self._send(conn, batch)
                self._read_replies(conn, batch)
                return
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if isinstance(exc, redis.TimeoutError):
                    _report_late(len(batch), time.monotonic() - began, time.process_time() - cpu)
                self._drop()  # the next send reconnects (and a connection refused is trouble too)
                if attempt == 2:
                    self._fail(batch, exc)
                    return
                for call in batch:
                    call.replies, call.error = [], None
            except Exception as exc:  # the connection is in doubt: drop it, fail this batch
                if conn is not None:
                    self._drop()
                self._fail(batch, exc)
                return

    @staticmethod
    def _fail(batch: list[_Call], exc: BaseException) -> None:
        for call in batch:
            call.error = exc
            if call.done is not None:
                call.done.set()

    def _send(self, conn, batch: list[_Call]) -> None:
        conn.send_packed_command(conn.pack_commands([command for call in batch for command in call.commands]))
        self.sent_at, self.sent_calls = time.monotonic(), len(batch)

    def _tell_of_waits(self) -> None:
        """A call gave up waiting for its turn: say, once a second at most, where the connection's round trips were."""
        now = time.monotonic()
        if now - self.told_at < 1:
            return
        self.told_at = now
        log.warning(
            "meter calls waited past %g s for their turn: %d queued; the last write (%d calls) %.2f s ago, "
            "the last replies read %.2f s ago, a round trip %s",
            self.timeout,
            len(self.queue),
            self.sent_calls,
            now - self.sent_at,
            now - self.read_at,
            "in flight" if self.busy else "not in flight",
        )

    def _read_replies(self, conn, batch: list[_Call]) -> None:
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
        self.read_at = time.monotonic()
        for call in batch:
            if call.done is not None:
                call.done.set()


def _report_late(calls: int, waited: float, cpu: float) -> None:
    """Say which side stalled when a round trip times out: CPU spent by this process through most of the wait means
    its own work kept it from reading the reply; little CPU means Redis (or the host, not running it) was late."""
    log.warning(
        "the meter's round trip of %d calls timed out after %.1f s; this process used %.1f s of CPU meanwhile",
        calls,
        waited,
        cpu,
    )

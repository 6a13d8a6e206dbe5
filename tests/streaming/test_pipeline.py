"""The meter's shared Redis connection (streampay/streaming/pipeline.py), under calls from many threads at once.

Redis is a server of the tests' own, paused (SIGSTOP) while the calls are made: the first call's round trip waits,
so every other call queues behind it, on either pass of the suite.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time

import redis

from streampay.streaming.pipeline import SharedConnection, _Call

THREADS, CALLS = 8, 50


def _calls_queued_behind_a_paused_redis(server) -> tuple[SharedConnection, list]:
    conn = SharedConnection(redis.Redis.from_url(server.url()), timeout=5)
    conn.execute(("PING",))  # connected
    answers: list = []

    def calls(n: int) -> None:
        for i in range(CALLS):
            answers.append((n, i, conn.execute(("ECHO", f"{n}:{i}"))[0]))

    threads = [threading.Thread(target=calls, args=(n,)) for n in range(THREADS)]
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # the first round trip waits for Redis; the other threads' calls queue behind it
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    for thread in threads:
        thread.join()
    return conn, answers


def test_every_call_gets_its_own_reply_when_calls_share_round_trips(redis_of_our_own):
    _, answers = _calls_queued_behind_a_paused_redis(redis_of_our_own)
    assert len(answers) == THREADS * CALLS
    assert all(reply == f"{n}:{i}".encode() for n, i, reply in answers)


def test_calls_that_queue_behind_a_round_trip_leave_no_garbage_for_the_collector(redis_of_our_own):
    """A heartbeat that waits for its turn must be freed by its reference count: a reference cycle per call made
    a web worker with 10,000 players collect tens of thousands of objects every few seconds, stopping all its
    sockets for 100-400 ms each time."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        _calls_queued_behind_a_paused_redis(redis_of_our_own)
        gc.collect()
        left = sum(isinstance(o, _Call) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == 0


def test_a_slow_call_strains_the_connection_only_as_more_than_its_share_of_the_last_calls(redis_of_our_own):
    """Admission's `strained`: one call past the wait among hundreds (a collection, a burst of opens) is not a strain;
    more than 1 % of them is."""
    server = redis_of_our_own
    conn = SharedConnection(redis.Redis.from_url(server.url()), timeout=5, strained_after=0.1, strained_share=0.01)

    def slow_call() -> None:
        os.kill(server.proc.pid, signal.SIGSTOP)
        threading.Timer(0.15, os.kill, (server.proc.pid, signal.SIGCONT)).start()
        conn.execute(("PING",))

    for _ in range(198):
        conn.execute(("PING",))
    slow_call()
    assert not conn.strained()  # 1 of 199
    slow_call()
    assert not conn.strained()  # 2 of 200: 1 %
    slow_call()
    assert conn.strained()  # 3 of 201


def test_a_round_trip_that_times_out_says_whether_redis_or_this_process_was_late(redis_of_our_own, caplog):
    """An operator reading the log of a burst of `unavailable` heartbeats learns which side stalled."""
    server = redis_of_our_own
    conn = SharedConnection(redis.Redis.from_url(server.url()), timeout=0.2)
    conn.execute(("PING",))
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        with caplog.at_level("WARNING", logger="streampay.streaming.pipeline"):
            try:
                conn.execute(("PING",))
            except redis.TimeoutError:
                pass
            else:
                raise AssertionError("a paused Redis answered")
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    said = [r.getMessage() for r in caplog.records if r.name == "streampay.streaming.pipeline"]
    assert said and all("timed out after 0.2 s" in m and "used 0.0 s of CPU" in m for m in said), said
    assert conn.execute(("PING",)) == [b"PONG"]  # and the next call reconnects


def test_calls_that_give_up_waiting_for_their_turn_say_where_the_round_trip_was(redis_of_our_own, caplog):
    server = redis_of_our_own
    conn = SharedConnection(redis.Redis.from_url(server.url()), timeout=0.3)
    conn.execute(("PING",))
    errors: list = []

    def call() -> None:
        try:
            conn.execute(("PING",))
        except redis.TimeoutError as exc:
            errors.append(str(exc))

    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        with caplog.at_level("WARNING", logger="streampay.streaming.pipeline"):
            leader = threading.Thread(target=call)
            leader.start()
            time.sleep(0.05)  # the leader's round trip is in flight: this call queues behind it
            call()
            leader.join()
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert "no reply from Redis within 0.3 s" in errors
    said = [r.getMessage() for r in caplog.records if "for their turn" in r.getMessage()]
    assert said and "the last write (1 calls)" in said[0] and "a round trip in flight" in said[0], said

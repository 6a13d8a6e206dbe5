"""How much of the wall clock a web process's loop wants a CPU: the share of it its thread ran, or waited on the run
queue for a CPU the host gave to others.

A gevent worker runs every socket on its main thread. As that share nears the whole, each ready greenlet waits for
all the others: a heartbeat takes several turns of the loop (its frame read, its meter call's round trip, its reply),
so its latency grows as a multiple of a turn, and a turn grows with the share. The loop's lateness (a sleep waking
late) shows a turn once it is long; the share shows the worker getting there. The run-queue wait counts what a busy
host takes: a worker that ran 60 % of the time and waited 30 % more for a CPU is as full as one that ran 90 %.
Under threads (the embedded server, the tests' servers) no one thread serves every socket, and the share reads 0.
"""

from __future__ import annotations

import collections
import sys
import time

# The main thread's: nanoseconds on a CPU, nanoseconds waiting on a run queue, time slices (Linux's schedstat). Under
# gunicorn's gevent workers every socket runs on it; under the embedded server's threads it only accepts connections.
SCHEDSTAT = "/proc/self/schedstat"


def spent() -> float:
    """Seconds the process's main thread has run on a CPU or waited for one; where the kernel does not say, the
    seconds the process has run."""
    try:
        with open(SCHEDSTAT, "rb") as f:
            ran, waited = f.read().split()[:2]
        return (int(ran) + int(waited)) / 1e9
    except (OSError, ValueError):
        return time.process_time()


def one_loop() -> bool:
    """Whether every socket runs on the main thread: gevent's monkey patching, as in gunicorn's gevent workers."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


class Demand:
    """The share of the last `window` seconds the main thread ran or waited for a CPU, from readings as it goes."""

    def __init__(self, window: float):
        self.window = window
        self.measured = one_loop()
        self.readings: collections.deque[tuple[float, float]] = collections.deque()

    def share(self, now: float) -> float:
        """Take a reading at `now` (time.monotonic()); the share since the oldest reading of the window, 0 until a
        quarter of the window is covered (one reading says nothing), and always 0 under threads."""
        if not self.measured:
            return 0.0
        readings = self.readings
        readings.append((now, spent()))
        while len(readings) > 1 and readings[1][0] <= now - self.window:
            readings.popleft()
        (then, before), (_, after) = readings[0], readings[-1]
        if now - then < self.window / 4:
            return 0.0
        return max(0.0, after - before) / (now - then)

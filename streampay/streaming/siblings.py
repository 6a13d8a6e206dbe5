"""How many sockets the other worker processes of this web dyno hold.

gunicorn's workers take connections from one listening socket, first come first served, so they do not fill
evenly: with 10,000 players on two workers capped at 5,000, one was full while the other held 4,300, and the
full one, answering its refusals quickly, kept winning the race for the next connection. The workers of one
gunicorn share an array of counts (made by gunicorn.conf.py in the master, before the fork; one slot per
worker, written only by its worker), so the cap holds for the dyno as a whole: it takes no socket past its
workers' caps together, however they are spread, and a worker may hold a few more than its own (OVERFLOW) while
its siblings hold fewer. A full worker tells a player whether to come back soon (the dyno has room) or later
(it is full).
A worker at its cap also steps aside: it stops accepting connections while a live sibling has room, so the
kernel hands the next ones to that sibling and a player is not refused by one worker while another would take
it (at 10,000 players on two workers of 5,000, 28 never got in within the benchmark's 30 s of retries). A
sibling is live while its loop stamps its slot of a second shared array (every STAMP_SECONDS): a stalled or dead
one, or one out of greenlets for connections (WEB_CONNECTIONS), is not counted on, and the worker accepts again.
Outside gunicorn (the embedded server, tests) a process has no siblings, and its cap is its own.
"""

from __future__ import annotations

import time
from collections.abc import MutableSequence

OVERFLOW = 0.05  # of the cap: what a worker may hold past it while the dyno has room
STAMP_SECONDS = 0.1  # how often a worker's loop stamps its slot ...
STALE_SECONDS = 0.5  # ... and a sibling not stamped for this long is not counted on to accept
_counts: MutableSequence[int] | None = None  # shared across the dyno's workers; None: no siblings
_stamps: MutableSequence[float] | None = None  # time.monotonic() (system-wide) of each worker's last stamp
_slot = 0
_cap: int | None = None  # this worker's cap, as its last publish() gave it
_listeners: list = []  # this worker's listening servers (gevent's), paused while it steps aside


def share(counts: MutableSequence[int], stamps: MutableSequence[float], slot: int) -> None:
    """In a worker, after the fork: this process writes its count to `counts[slot]` and stamps `stamps[slot]`."""
    global _counts, _stamps, _slot
    _counts, _stamps, _slot = counts, stamps, slot
    counts[slot], stamps[slot] = 0, 0.0


def listen_on(server) -> None:
    """A listening server of this worker (gevent's StreamServer, once started): paused while the worker steps aside."""
    _listeners.append(server)
    _steer()


def publish(sockets: int, cap: int) -> None:
    global _cap
    if _counts is not None:
        _counts[_slot], _cap = sockets, cap
        _steer()


def stamp() -> None:
    """This worker's loop turns: say so to the siblings (unless it has no greenlet left for a connection, so takes
    none), and step aside or back as they stand now."""
    if _stamps is not None:
        _stamps[_slot] = 0.0 if any(server.full() for server in _listeners) else time.monotonic()
        _steer()


def steps_aside(sockets: int, cap: int) -> bool:
    """Whether a worker holding `sockets` should leave new connections to a sibling: it is at its cap, and a sibling
    whose loop turns (stamped within STALE_SECONDS) holds fewer than its cap."""
    if _counts is None or _stamps is None or sockets < cap:
        return False
    now = time.monotonic()
    return any(_counts[i] < cap and now - _stamps[i] < STALE_SECONDS for i in range(len(_counts)) if i != _slot)


def _steer() -> None:
    aside = _cap is not None and _counts is not None and steps_aside(_counts[_slot], _cap)
    for server in _listeners:
        if aside:
            server.stop_accepting()
        elif server.started and not server.full():  # not closed, nor out of greenlets (gevent waits for one)
            server.start_accepting()


def have_room(cap: int) -> bool:
    """Whether the dyno's workers hold fewer sockets than `cap` each, together (a dead worker's slot reads 0: its
    replacement starts empty). A process with no siblings has no room beyond its own cap."""
    if _counts is None:
        return False
    return sum(_counts) < cap * len(_counts)


def full(sockets: int, cap: int) -> bool:
    """Whether a worker holding `sockets` takes no more: the dyno is full (however its sockets are spread), or the
    worker is past its cap by the overflow; with no siblings, at its cap."""
    if _counts is None:
        return sockets >= cap
    return sockets >= cap + int(cap * OVERFLOW) or not have_room(cap)

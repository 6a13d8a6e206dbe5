"""How many sockets the other worker processes of this web dyno hold.

gunicorn's workers take connections from one listening socket, first come first served, so they do not fill
evenly: with 10,000 players on two workers capped at 5,000, one was full while the other held 4,300, and the
full one, answering its refusals quickly, kept winning the race for the next connection. The workers of one
gunicorn share an array of counts (made by gunicorn.conf.py in the master, before the fork; one slot per
worker, written only by its worker), so the cap holds for the dyno as a whole: it takes no socket past its
workers' caps together, however they are spread, and a worker may hold a few more than its own (OVERFLOW) while
its siblings hold fewer. A full worker tells a player whether to come back soon (the dyno has room) or later
(it is full).
Outside gunicorn (the embedded server, tests) a process has no siblings, and its cap is its own.
"""

from __future__ import annotations

from collections.abc import MutableSequence

OVERFLOW = 0.05  # of the cap: what a worker may hold past it while the dyno has room
_counts: MutableSequence[int] | None = None  # shared across the dyno's workers; None: no siblings
_slot = 0


def share(counts: MutableSequence[int], slot: int) -> None:
    """In a worker, after the fork: this process writes its count to `counts[slot]`."""
    global _counts, _slot
    _counts, _slot = counts, slot
    counts[slot] = 0


def publish(sockets: int) -> None:
    if _counts is not None:
        _counts[_slot] = sockets


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

"""The socket counts a web dyno's workers share (streampay/streaming/siblings.py): the cap holds for the dyno."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from streampay.streaming import siblings


@pytest.fixture
def counts():
    shared = multiprocessing.RawArray("i", 2)
    siblings.share(shared, multiprocessing.RawArray("d", 2), 0)
    yield shared
    siblings._counts = siblings._stamps = None


@pytest.fixture
def stamps(counts):
    return siblings._stamps


def test_a_worker_at_its_cap_takes_a_few_more_while_the_dyno_has_room(counts):
    counts[1] = 90  # the sibling, short of its cap of 100
    assert not siblings.full(99, 100)
    counts[0] = 100
    assert siblings.have_room(100) and not siblings.full(100, 100)
    counts[0] = 104
    assert not siblings.full(104, 100)
    counts[0] = 105  # past the 5 % overflow
    assert siblings.full(105, 100)


def test_a_worker_at_its_cap_is_full_when_the_dyno_is(counts):
    counts[0], counts[1] = 100, 100
    assert not siblings.have_room(100) and siblings.full(100, 100)
    counts[0], counts[1] = 103, 97  # the dyno's 200, held unevenly
    assert siblings.full(103, 100)
    counts[0], counts[1] = 97, 103  # ... the other way: below its own cap, but the dyno is full
    assert siblings.full(97, 100)
    counts[1] = 0  # a dead worker's slot, until its replacement fills it
    assert siblings.have_room(100) and not siblings.full(103, 100)


def test_a_process_with_no_siblings_is_full_at_its_own_cap():
    assert siblings._counts is None
    assert not siblings.have_room(5)
    assert not siblings.full(4, 5) and siblings.full(5, 5)


def test_a_worker_at_its_cap_steps_aside_while_a_live_sibling_has_room(counts, stamps):
    counts[0], counts[1] = 100, 90
    stamps[1] = time.monotonic()
    assert siblings.steps_aside(100, 100)
    assert not siblings.steps_aside(99, 100)  # below its cap: it takes the next one itself
    counts[1] = 100
    assert not siblings.steps_aside(100, 100)  # the dyno is full: each worker answers its own refusals


def test_a_sibling_whose_loop_stalled_or_died_is_not_counted_on(counts, stamps):
    counts[0], counts[1] = 100, 10
    stamps[1] = time.monotonic() - 2 * siblings.STALE_SECONDS
    assert not siblings.steps_aside(100, 100)
    siblings.stamp()  # this worker's own stamp says nothing of the sibling
    assert not siblings.steps_aside(100, 100)


def test_a_worker_out_of_greenlets_for_connections_is_not_counted_on(counts, stamps):
    """Its listener (gevent's server, as gunicorn's worker makes it) takes no connection while its pool is full."""
    import gevent
    from gevent.pool import Pool
    from gevent.server import StreamServer

    pool = Pool(1)
    server = StreamServer(("127.0.0.1", 0), lambda sock, address: None, spawn=pool)
    server.start()
    try:
        siblings.listen_on(server)
        siblings.stamp()
        assert stamps[0] > 0
        busy = pool.spawn(gevent.sleep, 10)  # the worker's one greenlet for a connection, taken
        siblings.stamp()
        assert stamps[0] == 0.0
        busy.kill()
        gevent.sleep(0.01)  # the pool lets the dead greenlet go on the loop's next turn
        siblings.stamp()
        assert stamps[0] > 0
    finally:
        siblings._listeners.remove(server)
        server.close()

"""The public catalogue's listings, held in each web process: a page is a slice of ids, not a walk of an index.

A page-number page read from the database walks its sort index to the offset, then reads its rows: about a
millisecond of PostgreSQL's CPU deep in a listing, and the web process's round trip and rows on top. Here a web
process asks the database once for the whole order of a listing everyone sees alike (its ids, sorted by the
database, so every collation and tie-break is the database's own), once for the ids a search term matches (the
same `ILIKE` on the same indexes), and once for each item's JSON; any page of that listing, in any sort or
category, is then a slice of ids filtered by the term's matches and a join of JSON already written.

What is held is exactly as fresh as the Redis page cache it stands beside: it belongs to the catalogue's
generation read before its queries (`service.changed` moves it on after every commit that changes an item, or a
creator's name, and records which items changed). The first request that reads a newer generation moves what is
held on to it: the changed items' JSON is dropped, each term's matches are corrected for those items alone (one
statement for every term), and the orders of the listings they were or are in are read again (one string
each); what changed is unknown when Redis
lost its record (wiped, or more changes since than it keeps), and then everything is dropped.

Memory is bounded: a process holds at most `CATALOGUE_INDEX_IDS` ids (about 100 bytes each) and a twenty-fifth
as many items' JSON (about 1.5 kB each); a listing or a term's matches longer than a tenth of it is not held (its
pages come from the database, as creators' and admins' own views always do), and what would pass the bound
replaces what is held.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, cast

from streampay.content.schemas import content_row
from streampay.extensions import db, without_transaction
from streampay.users.service import like_pattern

READ_AHEAD = 100  # items read at once when a page has some not yet held: 22-32 µs each where ten cost 78
TOO_LONG = None  # held in place of a listing or a match set that is longer than a process holds


class _Held:
    """What one process holds under one generation; a request keeps the one it started with, so a change of
    generation while it waits on the database never mixes two generations in one place."""

    __slots__ = ("generation", "orders", "members", "matches", "items", "ids", "reading")

    def __init__(self, generation: bytes | None):
        self.generation = generation
        self.orders: dict[tuple, list[str] | None] = {}
        self.matches: dict[str, frozenset[str] | None] = {}
        self.members: dict[tuple, frozenset[str]] = {}  # a category's or a creator's listing, as a set
        self.items: dict[str, str] = {}
        self.ids = 0
        self.reading: dict[tuple, threading.Lock] = {}  # what a request is reading now, for the others to wait on


class Listings:
    """`source` is what `service` tells of the catalogue beyond one listing's statements:

    - `changes(since, to)`: the ids of the items changed after generation `since` up to `to` (None: not known);
    - `now(ids, patterns)`: what those items are now: ({id: (category, creator id)} of the visible ones, and which
      of them each pattern matches);
    - `recall(pattern)`: a term's matches another process read, as (its generation, the ids joined), or None;
    - `remember(pattern, generation, joined)`: keep the matches this process read for the others;
    - `touched(since)`: the ids of the items whose rows changed at or after `since` (a UTC datetime).

    Every `recheck` seconds a process also asks `touched` for the items changed since its last such check (less as
    much again, for the clocks of other hosts) and moves what it holds on for them as for a change: a change whose
    notice never reached Redis (it was down) is then served at most that late.

    Items' JSON is not shared: a hundred items' JSON from Redis (MGET, and ZMSCORE for their last changes) and
    written back cost a process about as much as writing it (3.4 ms), and the first second after an edit was no
    faster for it (bench/catalogue.py).
    """

    def __init__(self, budget: int, source, recheck: float = 0):
        self.budget = budget
        self.longest = budget // 10
        self.most_items = budget // 25
        self._source = source
        self._held = _Held(None)
        self._moving = threading.Lock()
        self.recheck = recheck
        self._rechecked = (time.monotonic(), datetime.now(UTC) - timedelta(seconds=recheck))

    def page(self, generation: bytes, query: dict, statements, page: int, page_size: int):
        """(how many items match, the page as a JSON array) of a listing everyone sees alike, or None when this
        listing is not held (longer than a process holds, or the index is off): read it from the database.

        `statements` are the listing's (ids in order, ids matching a pattern, rows by id) from `service`.
        """
        if self.longest <= 0:
            return None
        held = self._rechecked_at(self._at(generation))
        ordered_ids, matching_ids, rows_by_id = statements
        values = {k: query[k] for k in ("category", "creator_id") if query.get(k)}
        key = (query["sort"], *sorted(values.items()))
        order = self._once(held, held.orders, key, lambda: self._ids(ordered_ids, values))
        if order is TOO_LONG:
            return None
        first = (page - 1) * page_size
        if not query.get("search"):
            keys = order[first : first + page_size]
            bodies = self._items(held, rows_by_id, keys, lambda: order[first : first + READ_AHEAD])
            return None if bodies is None else (len(order), _array(bodies))
        # A search: the term's matches (read once for every sort and category) in the listing's order. A page walks
        # the order only as far as its last match; the count is a set intersection (or, in the whole catalogue,
        # every match).
        matched = self._matching(held, matching_ids, like_pattern(query["search"].strip()))
        if matched is TOO_LONG:
            return None
        if values:
            members = self._once(held, held.members, key, lambda: frozenset(order))
            total = len(matched.intersection(members))
        else:
            total = len(matched)
        in_order = (k for k in order if k in matched)
        keys = list(itertools.islice(in_order, first, first + page_size))
        bodies = self._items(held, rows_by_id, keys, lambda: keys + list(itertools.islice(in_order, READ_AHEAD)))
        return None if bodies is None else (total, _array(bodies))

    def _at(self, generation: bytes) -> _Held:
        """What is held under `generation`: the first request to read a new one moves it on (the others wait)."""
        held = self._held
        if held.generation == generation:
            return held
        with self._moving:
            held = self._held
            if held.generation == generation:
                return held
            if _older(generation, held.generation) and self._source.changes(generation, held.generation) is not None:
                # Read just before a change that another request has moved this process on to: what is held is
                # fresher. (Moving back would drop it all.) Not so after Redis lost the record: a new generation
                # drawn from a clock behind this one.
                return held
            changed = None if held.generation is None else self._source.changes(held.generation, generation)
            held = self._held = self._moved(held, generation, changed)
        return held

    def _rechecked_at(self, held: _Held) -> _Held:
        """`held`, moved on for the items the database says changed lately, when a recheck is due."""
        if not self.recheck or time.monotonic() - self._rechecked[0] < self.recheck:
            return held
        with self._moving:
            at, since = self._rechecked
            if time.monotonic() - at < self.recheck or self._held is not held:
                return self._held
            now = datetime.now(UTC)
            touched = self._source.touched(since)
            self._rechecked = (time.monotonic(), now - timedelta(seconds=self.recheck))
            if touched:
                held = self._held = self._moved(held, held.generation, touched)
        return held

    def _moved(self, old: _Held, generation: bytes, changed: frozenset[str] | None) -> _Held:
        """A new _Held (a request still reading under the old one writes there, not here) with what `old` held
        that the changes leave true: every item's JSON but the changed ones', each term's matches corrected for
        the changed items, and the orders of the listings that none of them was or is in."""
        new = _Held(generation)
        if changed is None:
            return new
        new.items = {k: v for k, v in old.items.items() if k not in changed}
        if not changed:
            new.orders, new.members, new.matches = dict(old.orders), dict(old.members), dict(old.matches)
            new.ids = old.ids
            return new
        held = [p for p, m in old.matches.items() if m is not TOO_LONG]
        listed, matched = self._source.now(changed, held)
        for pattern in held:
            new.matches[pattern] = (old.matches[pattern] - changed) | matched[pattern]
            new.ids += len(new.matches[pattern])
        for key, order in old.orders.items():
            if order is not TOO_LONG and _untouched(order, dict(key[1:]), changed, listed.values()):
                new.orders[key] = order
                new.ids += len(order)
                if key in old.members:
                    new.members[key] = old.members[key]
        return new

    def _once(self, held: _Held, where: dict, key, read):
        """`where[key]`, read and held by the first request that asks; the others that ask meanwhile wait for it
        rather than read the same thing again (an emptied cache under load is a queue, not a stampede)."""
        try:
            return where[key]
        except KeyError:
            pass
        lock = held.reading.setdefault((id(where), key), threading.Lock())
        with lock:
            try:
                return where[key]
            except KeyError:
                pass
            value = read()
            self._hold(held, where, key, value)
        held.reading.pop((id(where), key), None)
        return value

    def _matching(self, held: _Held, statement, pattern: str):
        def read():
            recalled = self._recalled(held, pattern)
            if recalled is not None:
                return recalled
            without_transaction()
            count, joined = db.session.execute(statement, {"pattern": pattern}).one()
            if count > self.longest:
                return TOO_LONG
            self._source.remember(pattern, held.generation, joined or "")
            return frozenset(joined.split(",") if joined else ())

        return self._once(held, held.matches, pattern, read)

    def _recalled(self, held: _Held, pattern: str) -> frozenset[str] | None:
        """A term's matches as another process read them, brought up to this generation by the changes since."""
        recalled = self._source.recall(pattern)
        if recalled is None:
            return None
        generation, joined = recalled
        matched = frozenset(joined.split(",") if joined else ())
        if generation == held.generation:
            return matched
        changed = self._source.changes(generation, held.generation)  # None too when it is from a later generation
        if changed is None:
            return None
        return (matched - changed) | self._source.now(changed, [pattern])[1][pattern] if changed else matched

    def _ids(self, statement, values: dict) -> list[str] | None:
        """The listing's ids in order: as one string (how many, and the ids joined by commas) where the database
        writes them so, else a row each."""
        without_transaction()  # a listing only reads
        result = db.session.execute(statement, {**values, "longest": self.longest + 1})
        if len(result.keys()) == 2:
            _, joined = result.one()
            ids = joined.split(",") if joined else []
        else:
            ids = result.scalars().all()
        return TOO_LONG if len(ids) > self.longest else ids

    def _hold(self, held: _Held, where: dict, key, ids) -> None:
        size = 0 if ids is TOO_LONG else len(ids)
        if held.ids + size > self.budget:
            held.orders.clear()
            held.members.clear()
            held.matches.clear()
            held.ids = 0
        where[key] = ids
        held.ids += size

    def _items(self, held: _Held, statement, keys: list[str], ahead) -> list[str] | None:
        """The JSON of the page's items; a page with any not yet held reads them with those of `ahead()` not held
        either (the next ones in its order), so walking a listing reads its rows a few statements at a time. A
        page whose items are all held does not look ahead: a search's page walks its order no further than its
        own last match."""
        items = held.items
        if all(key in items for key in keys):
            return [items[key] for key in keys]
        missing = [key for key in dict.fromkeys(keys + ahead()) if key not in items]
        without_transaction()
        rows = db.session.execute(statement, {"ids": [uuid.UUID(key) for key in missing]}).all()
        fetched = {row[0]: json.dumps(content_row(row[1:])) for row in rows}  # the key, then ROW_COLUMNS
        if len(fetched) < len(missing):
            return None  # gone from the table since the listing was read: let the database answer
        bodies = [items.get(key) or fetched[key] for key in keys]
        if len(items) + len(fetched) > self.most_items:
            items.clear()
        items.update(fetched)
        return bodies


def _older(generation: bytes, than: bytes | None) -> bool:
    """Whether `generation` is one of the last thousand before `than`: a request that read it just before some
    changes. Generations are microseconds of the clock when Redis had none, counted up by each change, so one
    drawn after Redis lost them is hours ahead of those held (or, from a clock behind, as far behind), not a few
    changes behind; one of 2**53 or more is from before they were microseconds."""
    if than is None or max(int(generation), int(than)) >= 2**53:
        return False
    return 0 < int(than) - int(generation) <= 1000


def _untouched(order: list[str], filters: dict, changed: frozenset[str], listed) -> bool:
    """Whether a listing's order still holds: none of the changed items was in it, nor is in it now (visible, in
    its category and by its creator)."""
    if not changed.isdisjoint(order):
        return False
    return not any(
        filters.get("category", category) == category and str(filters.get("creator_id", creator)) == creator
        for category, creator in listed
    )


def _array(bodies: list[str]) -> str:
    return "[" + ", ".join(bodies) + "]"  # json.dumps of a list of them, byte for byte


def id_key(column):
    """The id as the database writes it as text (no UUID object made per row): the key a process holds."""
    return cast(column, String)

"""Content: upload, edit, delete, the catalogue, and who may see what."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
import uuid
from types import SimpleNamespace

from blinker import Namespace
from flask import current_app
from sqlalchemy import Integer, Select, and_, bindparam, func, or_, select
from werkzeug.datastructures import FileStorage

from streampay.content.listings import Listings, id_key
from streampay.content.media import SNIFF_BYTES, sniff
from streampay.content.models import ORDER, VISIBLE, Content, ContentStatus
from streampay.content.schemas import ROW_COLUMNS, ContentSchema, content_row
from streampay.content.storage import StorageError, get_storage
from streampay.dbtypes import utcnow
from streampay.errors import DomainError, Forbidden, Invalid, NotFound
from streampay.extensions import db, redis_client, without_transaction
from streampay.metrics import CATALOGUE_PAGES
from streampay.users import signals as user_signals
from streampay.users.models import Role, User
from streampay.users.service import like_pattern

log = logging.getLogger(__name__)
ITEM_TTL = 300
CATALOGUE_TTL = 60
MATCHES_TTL = 3600  # terms' matches kept in Redis for the other processes
CATALOGUE_GENERATION = "content:catalogue:generation"
_dump = ContentSchema()
# Sent with the content id after the commit that took an item out of play (deleted, unpublished, failed):
# whoever plays it (the streaming sessions, a layer above) listens, so this module never calls up to them.
withdrawn = Namespace().signal("content-withdrawn")
# Who else may play an item is for the layer that knows (streaming: an active session); its receiver answers
# True or False, so content never imports it.
playback_allowed = Namespace().signal("content-playback-allowed")
EXTENSIONS = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/x-flac": "flac",
    "audio/x-wav": "wav",
    "audio/aac": "aac",
    "audio/mp4": "m4a",
    "video/x-m4v": "m4v",
    "audio/x-aiff": "aiff",
}


class UnsupportedMedia(DomainError):
    status, code = 415, "unsupported_media"


class StorageUnavailable(DomainError):
    status, code = 503, "storage_unavailable"


def _item_key(content_id) -> str:
    return f"content:item:{content_id}"


# Every change's generation and the ids it changed, in one sorted set (score: the generation), so a process that
# holds the catalogue under an older generation learns which items to read again. Its member SINCE scores the
# generation after which every change is recorded: set with the first change, raised as old entries are let go.
CATALOGUE_CHANGES = "content:catalogue:changes"
SINCE = "!since"  # sorts before any id of the same score: always rank 0
CHANGES_KEPT = 10_000
# KEYS: the generation, the change log. ARGV: the clock (the generation when Redis has none), the log's SINCE
# member, how many changes the log keeps, then the ids that changed.
_RECORD = """
local generation = tonumber(redis.call('GET', KEYS[1]))
if not generation or generation >= 2^53 then  -- none (new, or wiped), or one from before they were microseconds
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
end
generation = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], 'NX', generation - 1, ARGV[2])
for i = 4, #ARGV do redis.call('ZADD', KEYS[2], generation, ARGV[i]) end
local surplus = redis.call('ZCARD', KEYS[2]) - 1 - tonumber(ARGV[3])
if surplus > 0 then  -- let the oldest go; SINCE (rank 0) moves up to the last of them
  local last = redis.call('ZRANGE', KEYS[2], surplus, surplus, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[2], 1, surplus)
  redis.call('ZADD', KEYS[2], last[2], ARGV[2])
end
return generation
"""


def _clock() -> int:
    """A new generation when Redis has none: microseconds (exact in a sorted set's score), so never one before."""
    return time.time_ns() // 1000


def changed(content: Content) -> None:
    """After a commit that changed an item: drop its cached copy and every cached catalogue page."""
    changed_items([content.id])


def changed_items(ids) -> None:
    """After a commit that changed these items (or what their JSON shows, a creator's name): drop their cached
    copies, move the catalogue's generation on, and record that it was these items that changed."""
    ids = [str(i) for i in ids]
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    if ids:
        pipe.delete(*(_item_key(i) for i in ids))
    record = client.register_script(_RECORD)
    record(keys=[CATALOGUE_GENERATION, CATALOGUE_CHANGES], args=[_clock(), SINCE, CHANGES_KEPT, *ids], client=pipe)
    pipe.execute()


def _creator_renamed(app, user_id) -> None:
    """The catalogue shows an item's creator by name: their items' JSON changed with it."""
    ids = db.session.scalars(select(Content.id).where(Content.creator_id == user_id)).all()
    if ids:
        changed_items(ids)


def init_app(app) -> None:
    """Hear of a creator's new name (the users package sends it), here, so a `flask` command has it too."""
    user_signals.renamed.connect(_creator_renamed)


def upload(creator: User, form: dict, file: FileStorage) -> Content:
    head = file.stream.read(SNIFF_BYTES)
    file.stream.seek(0)
    if not head:
        raise Invalid("The file is empty.", {"file": ["Empty."]})
    media_type = sniff(head)
    if media_type is None:
        raise UnsupportedMedia(
            "The file is not a recognised audio or video format (judged by its bytes).",
            {"file": ["Not audio or video."]},
        )
    storage = get_storage()
    content = Content(
        id=uuid.uuid4(),
        creator_id=creator.id,
        title=form["title"].strip(),
        description=form["description"],
        category=form["category"],
        tags=[t.strip() for t in form["tags"].split(",") if t.strip()],
        price_per_second=form["price_per_second"],
        is_published=form["is_published"],
        original_filename=(file.filename or "upload")[:255],
        media_type=media_type,
        storage_backend=storage.name,
        storage_key="",
    )
    content.size_bytes = _size_of(file)
    try:
        key = storage.save(f"media/{content.id}.{EXTENSIONS.get(media_type, 'bin')}", file.stream, media_type)
    except StorageError as exc:
        raise StorageUnavailable("Media storage is unavailable; try again shortly.") from exc
    content.storage_key = key
    try:
        db.session.add(content)
        db.session.commit()
    except Exception:
        db.session.rollback()
        storage.delete(key)  # no orphan file for a row that was never written
        raise
    changed(content)
    return content


def _size_of(file: FileStorage) -> int:
    file.stream.seek(0, 2)
    size = file.stream.tell()
    file.stream.seek(0)
    return size


def visible_to(content: Content | dict, user: User | None) -> bool:
    """Whether `user` may see the item (a `Content`, a row of its table, or a dict of one): ready and published, or
    theirs, or they are an admin; never deleted."""
    get = content.get if isinstance(content, dict) else lambda k: getattr(content, k)
    if get("deleted_at") is not None:
        return False
    status = get("status")
    if (status.value if isinstance(status, ContentStatus) else status) == ContentStatus.READY and get("is_published"):
        return True
    return user is not None and (user.role == Role.ADMIN or str(user.id) == str(get("creator_id")))


def load(content_id, user: User | None = None, *, owner_only: bool = False) -> Content:
    content = db.session.get(Content, content_id)
    if content is None or not visible_to(content, user):
        raise NotFound("No such content.")
    if owner_only and not (user and (user.role == Role.ADMIN or content.creator_id == user.id)):
        raise Forbidden("Only the creator of this content (or an admin) may do that.")
    return content


def read_json(content_id, user: User | None) -> str:
    """One item as JSON, from Redis when it was read in the last five minutes."""
    cache = redis_client()
    cached = cache.get(_item_key(content_id))
    if cached is not None:
        body = json.loads(cached)
        if not visible_to({**body["visibility"], "deleted_at": None}, user):
            raise NotFound("No such content.")
        return json.dumps(body["item"])
    content = load(content_id, user)
    item = _dump.dump(content)
    visibility = {
        "status": content.status.value,
        "is_published": content.is_published,
        "creator_id": str(content.creator_id),
    }
    cache.set(_item_key(content_id), json.dumps({"item": item, "visibility": visibility}), ex=ITEM_TTL)
    return json.dumps(item)


def update(user: User, content_id, changes: dict) -> Content:
    content = load(content_id, user, owner_only=True)
    was_published = content.is_published
    for field, value in changes.items():
        setattr(content, field, value.strip() if field == "title" else value)
    db.session.commit()
    changed(content)
    if was_published and not content.is_published:
        withdrawn.send(content.id)
    return content


def delete(user: User, content_id) -> None:
    content = load(content_id, user, owner_only=True)
    content.deleted_at = utcnow()
    db.session.commit()
    changed(content)
    withdrawn.send(content.id)


def _where(audience: Role | None, filters: frozenset[str]) -> list:
    """Who sees which items, then the listing's filters; the values are bound when run."""
    c = Content.__table__.c
    if audience == Role.ADMIN:
        where = [c.deleted_at.is_(None)]
    elif audience == Role.CREATOR:
        public = (c.status == ContentStatus.READY) & c.is_published.is_(True)
        where = [c.deleted_at.is_(None), or_(public, c.creator_id == bindparam("me"))]
    else:
        where = [VISIBLE]
    if "category" in filters:
        where.append(c.category == bindparam("category"))
    if "creator_id" in filters:
        where.append(c.creator_id == bindparam("creator_id"))
    if "search" in filters:
        where.append(_matches(bindparam("pattern")))
    return where


def _matches(pattern):
    c = Content.__table__.c
    return or_(c.title.ilike(pattern, escape="\\"), c.description.ilike(pattern, escape="\\"))


_CREATORS = Content.__table__.join(User.__table__, User.__table__.c.id == Content.__table__.c.creator_id)


@functools.cache
def _listing(sort: str, audience: Role | None, filters: frozenset[str]) -> tuple[Select, Select]:
    """The count and the page statements of one kind of listing, built once; the values are bound when run.

    Everyone's view (no user, or a viewer) selects VISIBLE itself, so the sort indexes serve it.
    """
    c = Content.__table__.c
    where = _where(audience, filters)
    count = select(func.count()).select_from(Content.__table__).where(*where)
    # Skip and sort bare ids (for every sort an index-only walk to any page), then read the page's rows alone.
    order = ORDER[sort]
    ids = select(c.id).where(*where).order_by(*order)
    ids = ids.offset(bindparam("offset", type_=Integer)).limit(bindparam("limit", type_=Integer))
    page = select(*ROW_COLUMNS).select_from(_CREATORS).where(c.id.in_(ids)).order_by(*order)
    return count, page


@functools.cache
def _held_statements(sort: str, filters: frozenset[str], dialect: str) -> tuple[Select, Select, Select]:
    """What `listings` asks of a listing everyone sees: its ids in order (sort, category, creator), the ids a
    search pattern matches, and rows by id. The ids come as the database writes them (the process's keys).

    On PostgreSQL a listing's ids come as one string, joined in the listing's order (the rows walked on its
    index): a tenth of the client's CPU of a row per id (0.9 ms for 10,000 ids, not 4-17). Its rows' ids come
    as text too: 32 µs of CPU to read and write an item's JSON where UUIDs made it 45."""
    c = Content.__table__.c
    key = id_key(c.id)
    longest = bindparam("longest", type_=Integer)
    ordered = select(key).where(*_where(None, filters - {"search"})).order_by(*ORDER[sort]).limit(longest)
    if dialect == "postgresql":
        place = func.row_number().over(order_by=ORDER[sort])
        walked = ordered.add_columns(place.label("place")).subquery()
        ordered = select(func.count(), func.aggregate_strings(walked.c[0], ",").aggregate_order_by(walked.c.place))
    # How many, and their ids in one string: one row to read instead of thousands (any order will do).
    matching = select(func.count(), func.aggregate_strings(key, ",")).where(VISIBLE, _matches(bindparam("pattern")))
    columns = ROW_COLUMNS
    if dialect == "postgresql":  # the ids as PostgreSQL writes them, which is str(uuid): no UUID made per row
        text = {"id": key.label("id"), "creator_id": id_key(c.creator_id).label("creator_id")}
        columns = [text.get(column.name, column) if column.table is Content.__table__ else column for column in columns]
    rows = select(key.label("key"), *columns).select_from(_CREATORS)
    return ordered, matching, rows.where(c.id.in_(bindparam("ids", expanding=True)))


def _changes(since: bytes, to: bytes) -> frozenset[str] | None:
    """The ids of the items changed after generation `since` up to `to`; None when that is not known (Redis lost
    its record, or let it go)."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.zscore(CATALOGUE_CHANGES, SINCE)
    pipe.zrangebyscore(CATALOGUE_CHANGES, b"(" + since, to)
    recorded_since, ids = pipe.execute()
    if recorded_since is None or not recorded_since <= int(since) <= int(to):
        return None
    # Each id as the database writes it as text (the keys held): PostgreSQL's with dashes, SQLite's without.
    return frozenset(form for i in ids if i != SINCE.encode() for form in (i.decode(), i.decode().replace("-", "")))


def _now(ids: frozenset[str], patterns: list[str]) -> tuple[dict[str, tuple], dict[str, frozenset[str]]]:
    """What these items are now: the listings everyone sees that they belong to ({id: (category, creator id)} of
    the visible ones), and which of them each search pattern matches (the catalogue's own rule). A statement per
    hundred patterns, a column each."""
    c = Content.__table__.c
    head = [id_key(c.id), and_(VISIBLE), c.category, c.creator_id]
    among = c.id.in_([uuid.UUID(i) for i in ids])
    listed, matched = {}, {}
    without_transaction()
    for start in range(0, max(len(patterns), 1), 100):
        some = patterns[start : start + 100]
        columns = [and_(VISIBLE, _matches(bindparam(f"p{i}"))) for i in range(len(some))]
        values = {f"p{i}": p for i, p in enumerate(some)}
        rows = db.session.execute(select(*head, *columns).where(among), values).all()
        listed = listed or {row[0]: (row[2], str(row[3])) for row in rows if row[1]}  # the same in every chunk
        matched.update({p: frozenset(row[0] for row in rows if row[i + 4]) for i, p in enumerate(some)})
    return listed, matched


def _touched(since) -> frozenset[str]:
    """The ids (as the database writes them) of the items whose rows changed at or after `since`."""
    c = Content.__table__.c
    without_transaction()
    return frozenset(db.session.scalars(select(id_key(c.id)).where(c.updated_at >= since)).all())


def _matches_key(pattern: str) -> str:
    return f"content:catalogue:matches:{hashlib.sha1(pattern.encode()).hexdigest()}"  # noqa: S324


def _recall(pattern: str) -> tuple[bytes, str] | None:
    kept = redis_client().get(_matches_key(pattern))
    if kept is None:
        return None
    generation, joined = kept.split(b"\n", 1)
    return generation, joined.decode()


def _remember(pattern: str, generation: bytes, joined: str) -> None:
    redis_client().set(_matches_key(pattern), b"%s\n%s" % (generation, joined.encode()), ex=MATCHES_TTL)


def _listings() -> Listings:
    extensions = current_app.extensions
    if "catalogue_listings" not in extensions:
        # What listings asks of the catalogue beyond a listing's statements.
        source = SimpleNamespace(
            changes=_changes,
            now=_now,
            recall=_recall,
            remember=_remember,
            touched=_touched,
        )
        config = current_app.config
        listings = Listings(config["CATALOGUE_INDEX_IDS"], source, config["CATALOGUE_RECHECK_SECONDS"])
        extensions["catalogue_listings"] = listings
    return extensions["catalogue_listings"]


def _filters(query: dict) -> frozenset[str]:
    return frozenset(k for k in ("category", "creator_id", "search") if query.get(k))


def catalogue_page(user: User | None, query: dict, page: int, page_size: int) -> tuple[int, str | bytes]:
    """One page of the catalogue: (how many items match in all, the page as a JSON array).

    Listings everyone sees alike come from what this process holds of them (`listings`: their ids in order, a
    search's matches, the items' JSON, moved on to each new generation by the items that changed) or else from
    Redis, with one round trip either way: each entry carries the generation it was built under, and `changed`
    moves the generation on.
    A listing too long to hold is read from the database page by page and its pages cached in Redis; its match
    count is cached apart from the pages, so walking the pages of a search or category counts its matches once.
    """
    prefix = catalogue_cache_key(user, query)
    if prefix is None:
        return _catalogue_page(user, query, page, page_size)
    page_key, count_key = f"{prefix}:{query['sort']}:{page}:{page_size}", f"{prefix}:count"
    cache = redis_client()
    generation, cached_page, cached_count = cache.mget(CATALOGUE_GENERATION, page_key, count_key)
    if generation is None:  # never changed, or Redis lost it: a generation no process can hold anything under
        clock, pipe = _clock(), cache.pipeline(transaction=False)
        pipe.set(CATALOGUE_GENERATION, clock, nx=True)
        pipe.zadd(CATALOGUE_CHANGES, {SINCE: clock - 1}, nx=True)  # every change from now on is recorded
        pipe.execute()
        generation = b"0"
    elif cached_page is not None:
        built_under, count, body = cached_page.split(b"\n", 2)
        if built_under == generation:
            CATALOGUE_PAGES.labels("cache").inc()
            return int(count), body
    if generation != b"0":
        filters = _filters(query)
        statements = _held_statements(query["sort"], filters, db.engine.dialect.name)
        held = _listings().page(generation, query, statements, page, page_size)
        if held is not None:
            CATALOGUE_PAGES.labels("held").inc()
            return held
    CATALOGUE_PAGES.labels("database").inc()
    count = None
    if cached_count is not None:
        built_under, value = cached_count.split(b"\n", 1)
        count = int(value) if built_under == generation else None
    total, body = _catalogue_page(user, query, page, page_size, count)
    # Tagged with the generation read before the queries: a change committed meanwhile makes them stale.
    pipe = cache.pipeline(transaction=False)
    pipe.set(page_key, b"%s\n%d\n%s" % (generation, total, body.encode()), ex=CATALOGUE_TTL)
    if count is None:
        pipe.set(count_key, b"%s\n%d" % (generation, total), ex=CATALOGUE_TTL)
    pipe.execute()
    return total, body


def _catalogue_page(user: User | None, query: dict, page: int, page_size: int, count: int | None = None):
    audience = user.role if user is not None and user.role != Role.VIEWER else None
    filters = _filters(query)
    count_stmt, page_stmt = _listing(query["sort"], audience, filters)
    values = {k: query[k] for k in filters - {"search"}}
    if "search" in filters:
        values["pattern"] = like_pattern(query["search"].strip())
    if audience == Role.CREATOR:
        values["me"] = user.id
    without_transaction()  # a listing only reads
    if count is None:
        count = db.session.scalar(count_stmt, values)
    first = (page - 1) * page_size
    rows = []
    if first < count:
        rows = db.session.execute(page_stmt, {**values, "offset": first, "limit": page_size}).all()
    return count, json.dumps([content_row(row) for row in rows])


def catalogue_cache_key(user: User | None, query: dict) -> str | None:
    """Where the pages of a listing everyone sees alike are cached; None for a creator's or admin's own view."""
    if user is not None and user.role != Role.VIEWER:
        return None
    filters = json.dumps({k: str(v) for k, v in query.items() if k != "sort"}, sort_keys=True)
    return f"content:catalogue:{hashlib.sha1(filters.encode()).hexdigest()}"  # noqa: S324


def load_for_playback(content_id, user: User) -> Content:
    """The bytes go to the item's creator, admins, and whoever a `playback_allowed` receiver lets play it."""
    content = load(content_id, user)
    if user.role == Role.ADMIN or content.creator_id == user.id:
        return content
    if not any(allowed for _, allowed in playback_allowed.send(content, viewer=user)):
        raise Forbidden("Start a stream of this content to play it.")
    return content

"""CSV answers: `Accept: text/csv` or `?format=csv`, streamed a few hundred rows at a time.

Cells as the API writes them: amounts already formatted ("12.5000000"), times in ISO 8601 with
their zone, dates as YYYY-MM-DD. A generator of rows never holds the whole list in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from functools import wraps

from flask import Response, current_app, request, stream_with_context
from sqlalchemy import Select

from streampay.extensions import db

MIMETYPE = "text/csv"
ROWS_PER_CHUNK = 500


def doc(schema) -> dict:
    """For `@blp.doc(**csvexport.doc(Schema))`: the 200 answer is JSON, or CSV when asked."""
    csv_body = {"schema": {"type": "string", "description": "CSV with a header row, streamed."}}
    return {
        "responses": {
            200: {  # the int key flask-smorest uses: merged into its 200, X-Pagination kept
                "description": "OK; CSV with `format=csv` or `Accept: text/csv`.",
                "content": {"application/json": {"schema": schema}, MIMETYPE: csv_body},
            }
        }
    }


def wanted() -> bool:
    """Did the client ask for CSV (a `format=csv` query, or an Accept header preferring it)?"""
    if request.args.get("format") == "csv":
        return True
    return request.accept_mimetypes.best_match(["application/json", MIMETYPE]) == MIMETYPE


def offered(export: Callable[[], Response]):
    """Above `@blp.paginate()`: a CSV request is answered by `export()` (every row, streamed), others by the view."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            return export() if wanted() else view(*args, **kwargs)

        return wrapper

    return decorator


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def stream(filename: str, header: list[str], rows: Iterable[Iterable]) -> Response:
    """A streamed CSV download of `rows` (each a sequence of cells, in `header`'s order)."""

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(header)
        n = 0
        for row in rows:
            writer.writerow([_cell(v) for v in row])
            n += 1
            if n % ROWS_PER_CHUNK == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(
        stream_with_context(generate()),
        mimetype=MIMETYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def keyset(page_after: Callable[[object | None], Select], key: Callable[[object], object]) -> Iterator:
    """Rows a page at a time by key (`page_after(None)` the first page, `page_after(key(last row))` the next).

    Each page is read in a transaction of its own, ended before its rows are written out: a slow
    download never keeps a database connection in a transaction (the web dyno's rule under gevent).
    """
    after, size = None, current_app.config["CSV_PAGE_ROWS"]
    while True:
        rows = db.session.execute(page_after(after).limit(size)).all()
        db.session.commit()
        yield from rows
        if len(rows) < size:
            return
        after = key(rows[-1])

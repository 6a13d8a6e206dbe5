"""Page a SQLAlchemy select for flask-smorest's `@blp.paginate()` (which writes X-Pagination)."""

from __future__ import annotations

from sqlalchemy import Select, func, select

from streampay.extensions import db


def page_of(stmt: Select, pagination_parameters) -> list:
    pagination_parameters.item_count = db.session.scalar(
        select(func.count()).select_from(stmt.order_by(None).subquery())
    )
    if pagination_parameters.first_item >= pagination_parameters.item_count:
        return []  # past the end; a huge page must not reach the database as an overflowing OFFSET
    page = stmt.offset(pagination_parameters.first_item).limit(pagination_parameters.page_size)
    return list(db.session.scalars(page))

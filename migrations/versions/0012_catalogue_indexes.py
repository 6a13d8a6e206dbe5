"""catalogue indexes: one per sort order of the visible items, trigram indexes for the search

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 13:45:00

PostgreSQL only; on SQLite (the embedded default, small catalogues) this revision does nothing.
Each sort order gets a partial index over the items everyone may see, alone and within a category,
in exactly the order the API sorts them (id last), so any page is an index-only walk. The search's
ILIKE '%term%' on title and description is served by pg_trgm's GIN indexes (pg_trgm is a trusted
extension: the database's owner may create it).
"""

import sqlalchemy as sa
from alembic import op


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

VISIBLE = sa.text("deleted_at IS NULL AND status = 'ready' AND is_published IS true")
SORTS = {
    "newest": ["created_at DESC", "id"],
    "oldest": ["created_at", "id"],
    "price": ["price_per_second", "created_at DESC", "id"],
    "price_desc": ["price_per_second DESC", "created_at DESC", "id"],
    "duration": ["duration_ms", "created_at DESC", "id"],
    "duration_desc": ["duration_ms DESC", "created_at DESC", "id"],
    "title": ["title", "id"],
}
SEARCHED = ("title", "description")


def _sort_indexes():
    for name, keys in SORTS.items():
        yield f"ix_content_visible_{name}", keys
        yield f"ix_content_visible_category_{name}", ["category", *keys]


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in SEARCHED:
        op.create_index(
            f"ix_content_{column}_trgm",
            "content",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
    for name, keys in _sort_indexes():
        op.create_index(name, "content", [sa.text(key) for key in keys], postgresql_where=VISIBLE)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _ in _sort_indexes():
        op.drop_index(name, table_name="content")
    for column in SEARCHED:
        op.drop_index(f"ix_content_{column}_trgm", table_name="content")
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")

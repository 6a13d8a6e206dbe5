"""Rollups: sums per scope (content, creator, platform) per UTC bucket at four grains.

A quarter hour is the finest grain because every zone's midnight falls on one (Asia/Kolkata is
+05:30, Asia/Kathmandu +05:45). A period is read as the UTC days and months between the UTC
midnights of its local dates, set right at each local midnight by the hours and quarters between
the two (buckets.Cover): a bounded number of rows whatever the history, never the charges.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from streampay.dbtypes import on_postgresql
from streampay.extensions import db

FIGURES = ("gross", "fee", "watch_ms", "sessions")


class Rollup(db.Model):
    __tablename__ = "analytics_rollups"
    __table_args__ = (
        # Top content and top creators: every id of a scope in a period, read from the index alone.
        # ... the figures INCLUDEd on PostgreSQL (_covering).
        Index("ix_analytics_rollups_owner", "scope", "owner", "grain", "bucket"),
        Index("ix_analytics_rollups_grain", "scope", "grain", "bucket"),
    )

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # content, creator, platform
    scope_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the id, or "platform"
    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # see buckets.GRAINS
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # its UTC start, epoch seconds
    owner: Mapped[str] = mapped_column(String(36), default="")  # a content row's creator
    gross: Mapped[int] = mapped_column(BigInteger, default=0)
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    watch_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    sessions: Mapped[int] = mapped_column(Integer, default=0)


@on_postgresql
def _covering() -> None:
    for index in Rollup.__table__.indexes:
        index.dialect_options["postgresql"]["include"] = ["scope_id", *FIGURES]


class ViewerBucket(db.Model):
    """Who watched a scope in a quarter hour: the edges of a period that whole UTC days do not cover."""

    __tablename__ = "analytics_viewers"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    viewer_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class ViewerDays(db.Model):
    """Who watched a scope on which UTC days of a year: a row per viewer and year, a day mask per month
    (bit d-1 for day d). Unique viewers of any run of whole days are one row per viewer, exact."""

    __tablename__ = "analytics_viewer_days"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    viewer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    m1: Mapped[int] = mapped_column(Integer, default=0)
    m2: Mapped[int] = mapped_column(Integer, default=0)
    m3: Mapped[int] = mapped_column(Integer, default=0)
    m4: Mapped[int] = mapped_column(Integer, default=0)
    m5: Mapped[int] = mapped_column(Integer, default=0)
    m6: Mapped[int] = mapped_column(Integer, default=0)
    m7: Mapped[int] = mapped_column(Integer, default=0)
    m8: Mapped[int] = mapped_column(Integer, default=0)
    m9: Mapped[int] = mapped_column(Integer, default=0)
    m10: Mapped[int] = mapped_column(Integer, default=0)
    m11: Mapped[int] = mapped_column(Integer, default=0)
    m12: Mapped[int] = mapped_column(Integer, default=0)


class RetentionBucket(db.Model):
    """Sessions of an item that ended in a bucket, by how far they got: step k billed at least k x 5 % of it."""

    __tablename__ = "analytics_retention"

    content_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    step: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 0..20
    sessions: Mapped[int] = mapped_column(Integer, default=0)

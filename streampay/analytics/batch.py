"""A dashboard call's reads as one statement: tagged parts joined by UNION ALL, one round trip.

Each part selects the same nine columns: its tag, two keys, four figures, an id and a name (padded with 0 and
''). The SQL is plain text built from our own integers and bound strings: building it as SQLAlchemy
expressions cost more CPU than the database spends answering it.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import bindparam, text

from streampay.extensions import db

COLUMNS = ("k1", "k2", "a", "b", "c", "d", "id", "name")


def ints(values) -> str:
    """Our own integers as an SQL list: no bind per value, so the statement stays short to parse."""
    return ", ".join(str(int(v)) for v in values)


def total(expr: str) -> str:
    """A sum as a 64-bit integer. PostgreSQL sums bigints as numeric, which would make the whole UNION column
    numeric and every value of it a Decimal in Python; stroops fit in 64 bits many times over."""
    return f"CAST(sum({expr}) AS BIGINT)"


def dialect() -> str:
    return db.session.get_bind().dialect.name


def epoch_seconds(column: str) -> str:
    """A UTC timestamp column as whole epoch seconds, on PostgreSQL and on SQLite (naive UTC text)."""
    if dialect() == "postgresql":
        return f"CAST(floor(date_part('epoch', {column})) AS BIGINT)"  # a float, cheaper than extract's numeric
    return f"CAST(strftime('%s', {column}) AS INTEGER)"


def as_uuid_key(column: str) -> str:
    """A text id (with dashes) in the form a UUID key column compares with: a uuid, or SQLite's 32 hex digits."""
    if dialect() == "postgresql":
        return f"CAST({column} AS uuid)"
    return f"replace({column}, '-', '')"


class Batch:
    """Parts (and the CTEs they share) gathered for one statement; `run` returns each tag's rows."""

    def __init__(self) -> None:
        self.ctes: list[str] = []
        self.parts: list[str] = []
        self.params: dict = {}
        self.types: dict = {}

    def bind(self, name: str, value, type_=None) -> str:
        """A bound value (with the column type that writes it, for times and ids), named in the SQL."""
        self.params[name] = value
        if type_ is not None:
            self.types[name] = type_
        return f":{name}"

    def cte(self, name: str, sql: str) -> None:
        self.ctes.append(f"{name} AS ({sql})")

    def add(self, tag: str, sql: str) -> None:
        """`sql` selects the eight columns after the tag (a query with ORDER BY or LIMIT is wrapped)."""
        self.parts.append(f"SELECT '{tag}' AS tag, p.* FROM ({sql}) AS p")  # noqa: S608 (our tag)

    def run(self) -> dict[str, list[tuple]]:
        head = f"WITH {', '.join(self.ctes)} " if self.ctes else ""
        stmt = text(head + " UNION ALL ".join(self.parts))
        if self.types:
            stmt = stmt.bindparams(*(bindparam(name, type_=t) for name, t in self.types.items()))
        out: dict[str, list[tuple]] = defaultdict(list)
        for row in db.session.execute(stmt, self.params).all():
            out[row[0]].append(row[1:])
        return out

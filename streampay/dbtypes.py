"""Column types shared by every model."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import DateTime, Enum
from sqlalchemy.types import TypeDecorator

from streampay.errors import Conflict

# What the models declare for PostgreSQL alone: its indexes and their options (a dialect option loads the dialect's
# module, a twentieth of a `flask` command, which an app on SQLite never needs).
_POSTGRESQL_ONLY: list[Callable[[], None]] = []


def on_postgresql(declare: Callable[[], None]) -> Callable[[], None]:
    """Runs `declare` once, when the first app on PostgreSQL is built (`declare_postgresql_only`)."""
    _POSTGRESQL_ONLY.append(declare)
    return declare


def declare_postgresql_only() -> None:
    while _POSTGRESQL_ONLY:
        _POSTGRESQL_ONLY.pop(0)()


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on PostgreSQL and on SQLite (which stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def str_enum(cls: type, name: str, length: int = 16) -> Enum:
    """A Python enum stored as its values in a VARCHAR with a CHECK (no native type to migrate)."""
    return Enum(
        cls,
        native_enum=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        create_constraint=True,
        name=name,
    )


class StateMachine:
    """Rows whose `status` moves only along their class's TRANSITIONS table, and says when."""

    TRANSITIONS: dict = {}

    def move_to(self, status) -> None:
        if status not in self.TRANSITIONS[self.status]:
            raise Conflict(f"{type(self).__name__} cannot go from {self.status.value} to {status.value}.")
        self.status = status
        if hasattr(type(self), "status_changed_at"):
            self.status_changed_at = utcnow()

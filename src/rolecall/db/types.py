"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


def as_stored(value: datetime) -> datetime:
    """An aware ``value`` in UTC, as a ``UtcDateTime`` column stores and compares it.
    ``ValueError`` when UTC moves it beyond the calendar's ends: an offset on the first hours
    of year 1 or the last of 9999 (inputs check with this, rather than fail in a statement)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is beyond the times stored") from None


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp; SQLite returns naive values, so attach UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return as_stored(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

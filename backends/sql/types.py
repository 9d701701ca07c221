"""Column types shared by the models and the migrations' expectations.

* :class:`UTCDateTime` — every timestamp is stored in UTC and read back as an *aware* UTC
  datetime on both dialects (``TIMESTAMP WITH TIME ZONE`` on PostgreSQL; on SQLite, which has no
  time zone support, a naive UTC string whose fixed-width format also sorts correctly).
* :class:`EnumText` — enum members are bound by *value*. Without it psycopg 3 would dump a
  Python ``Enum`` by its *name* (``SELF_HOSTED`` instead of ``self-hosted``).
* :data:`JSONType` — ``JSON`` with a ``JSONB`` variant on PostgreSQL; ``None`` is SQL NULL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

#: 64-bit identity on PostgreSQL; SQLite needs exactly ``INTEGER`` for its rowid alias
#: (``INTEGER PRIMARY KEY AUTOINCREMENT``).
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp. Naive datetimes are refused: they are always a bug."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given; use an aware UTC datetime (utcnow())")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite's DATETIME storage drops tzinfo anyway; store the UTC wall time.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class EnumText(TypeDecorator[str]):
    """A string column holding the *value* of a ``StrEnum``."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, Enum):
            return str(value.value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return value

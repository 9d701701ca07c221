"""Engine construction per dialect.

SQLite (file-backed only): WAL so readers never block the writer, ``busy_timeout`` so writers
queue instead of failing, foreign keys on, and — the important part — every transaction starts
with ``BEGIN IMMEDIATE``. pysqlite's own transaction handling is switched off
(``isolation_level = None``) and SQLAlchemy's ``begin`` event emits the BEGIN itself (the recipe
in SQLAlchemy's SQLite dialect docs, "Transactions with SQLite and the sqlite3 driver"). With a
deferred BEGIN, two transactions that both read and then write would deadlock on the lock
upgrade and one would get "database is locked" immediately, busy_timeout or not; an immediate
BEGIN takes the write lock up front, so writers simply wait their turn.

PostgreSQL (psycopg 3): READ COMMITTED (the server default). Correctness under concurrency comes
from compare-and-set writes, row locks and ``SKIP LOCKED``, not from a stricter isolation level
(which would turn ordinary races into serialization failures the caller must retry). Sessions
run in UTC.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from vintner.errors import ConfigError

#: Options accepted by :meth:`SqlRepository.from_url`; anything else is a configuration error.
KNOWN_OPTIONS = frozenset(
    {"pool_size", "max_overflow", "pool_timeout", "pool_recycle", "echo", "busy_timeout_s"}
)

DEFAULT_BUSY_TIMEOUT_S = 30.0


def normalize_url(url: str | URL) -> URL:
    """``postgres://`` / ``postgresql://`` → ``postgresql+psycopg://``; SQLite stays pysqlite."""
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        if parsed.drivername in ("postgres", "postgresql"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.get_driver_name() != "psycopg":
            raise ConfigError(
                f"Unsupported PostgreSQL driver {parsed.get_driver_name()!r}; "
                "use postgresql+psycopg://"
            )
    elif backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ConfigError(f"Unsupported SQLite driver {parsed.drivername!r}")
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            raise ConfigError(
                "In-memory SQLite is private to one connection; use a file "
                "(sqlite:///path/vintner.db) or vintner.testing.fake_repository for tests"
            )
    else:
        raise ConfigError(f"Unsupported database URL scheme {parsed.drivername!r}")
    return parsed


def check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise ConfigError(
            f"Unknown database option(s): {', '.join(unknown)} "
            f"(known: {', '.join(sorted(KNOWN_OPTIONS))})"
        )


def build_engine(url: URL, options: Mapping[str, Any]) -> Engine:
    check_options(options)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, options)
    return _postgres_engine(url, options)


def _sqlite_engine(url: URL, options: Mapping[str, Any]) -> Engine:
    database = url.database or ""
    if not database.startswith("file:"):
        parent = os.path.dirname(os.path.abspath(database))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"Invalid setting database_url: cannot create {parent}: {exc.strerror or exc}"
            ) from None
    busy_timeout = float(options.get("busy_timeout_s", DEFAULT_BUSY_TIMEOUT_S))
    engine = create_engine(
        url,
        echo=bool(options.get("echo", False)),
        pool_size=int(options.get("pool_size", 8)),
        max_overflow=int(options.get("max_overflow", 16)),
        pool_timeout=float(options.get("pool_timeout", 30)),
        # Connections are pooled and handed between request threads; each is used by one
        # thread at a time, which is what sqlite3 requires.
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode and much faster.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get("vintner_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: URL, options: Mapping[str, Any]) -> Engine:
    return create_engine(
        url,
        echo=bool(options.get("echo", False)),
        pool_size=int(options.get("pool_size", 10)),
        max_overflow=int(options.get("max_overflow", 20)),
        pool_timeout=float(options.get("pool_timeout", 30)),
        pool_recycle=int(options.get("pool_recycle", 1800)),
        pool_pre_ping=True,
        connect_args={"options": "-c timezone=UTC", "connect_timeout": 10},
    )

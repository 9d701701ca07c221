"""Alembic environment for Vintner's SQL backend (SQLite and PostgreSQL).

Two ways in:

* programmatically (``backends.sql.migrations``): the caller passes a connection that is already
  inside a locked transaction via ``config.attributes["connection"]``; we run on it and leave
  committing to the caller;
* the ``alembic`` command: the URL comes from ``-x url=...``, else ``VINTNER_DATABASE_URL``, else
  vintner's configuration when it can provide one, else ``sqlite:///instance/vintner.db``; the
  engine is built exactly as the server builds it (``backends.sql.engine``) and the same lock
  is taken as for a programmatic run.

SQLite gets ``render_as_batch=True`` (ALTER TABLE support through table rebuilds); every
constraint is named through the naming convention in ``backends.sql.models``.
"""

from __future__ import annotations

import os

from sqlalchemy import Connection

from alembic import context
from backends.sql.models import metadata as target_metadata

config = context.config

DEFAULT_URL = "sqlite:///instance/vintner.db"


def _url_from_vintner_config() -> str | None:
    """The database URL from vintner's configuration, if that module is there and can say."""
    try:
        from vintner import config as vintner_config  # type: ignore[attr-defined]
    except Exception:
        return None
    for name in ("load_config", "load_settings", "get_settings"):
        loader = getattr(vintner_config, name, None)
        if loader is None:
            continue
        try:
            settings = loader()
        except Exception:
            return None
        url = getattr(settings, "database_url", None)
        if url is None and isinstance(settings, dict):
            url = settings.get("database_url") or settings.get("DATABASE_URL")
        return str(url) if url else None
    return None


def database_url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("VINTNER_DATABASE_URL")
        or _url_from_vintner_config()
        or DEFAULT_URL
    )


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=False,
    )


def run_migrations_offline() -> None:
    from backends.sql.engine import normalize_url

    url = normalize_url(database_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    from backends.sql.engine import build_engine, normalize_url
    from backends.sql.migrations import migration_connection

    engine = build_engine(normalize_url(database_url()), {})
    try:
        with migration_connection(engine) as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

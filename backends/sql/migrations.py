"""Running the Alembic history programmatically (``SqlRepository.migrate()``, ``vintner db``).

Where the history lives: the top-level ``alembic/`` folder of the source tree (with
``alembic.ini`` next to it for the ``alembic`` command). The folder has no ``__init__.py`` on
purpose: a package named ``alembic`` would shadow the Alembic library, so it cannot ship as
package data either. Instead a wheel installs it as data files (pyproject's
``[tool.setuptools.data-files]``) under ``<prefix>/share/vintner/alembic``. Lookup order:
``VINTNER_ALEMBIC_DIR`` → ``<repo root>/alembic`` (source checkout, editable install) →
``<prefix>/share/vintner/alembic`` (the venv's or interpreter's prefix, then the user base).

Concurrency: several server processes may start (and migrate) at once.

* PostgreSQL: the whole upgrade is one transaction (PostgreSQL has transactional DDL) that
  first takes ``pg_advisory_xact_lock``; a second migrator waits, then finds the schema at head.
* SQLite: the transaction is ``BEGIN IMMEDIATE`` (see :mod:`backends.sql.engine`), which already
  excludes other writers; foreign keys are switched off for the duration (they cannot be
  toggled inside a transaction, and batch-mode table rebuilds would otherwise cascade deletes)
  and ``PRAGMA foreign_key_check`` must come back clean before commit.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from alembic import command

#: Arbitrary constant key for pg_advisory_xact_lock ("vintner" in ASCII, as a bigint).
MIGRATION_LOCK_KEY = 0x76696E746E6572


def script_location() -> str:
    """The folder holding ``env.py`` and ``versions/``."""
    override = os.environ.get("VINTNER_ALEMBIC_DIR")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve().parent
    candidates.append(here.parent.parent / "alembic")  # source tree / editable install
    # A wheel installs the history as data files under <prefix>/share/vintner/alembic.
    prefixes = [sysconfig.get_path("data"), sys.prefix, site.getuserbase()]
    for prefix in dict.fromkeys(p for p in prefixes if p):
        candidates.append(Path(prefix) / "share" / "vintner" / "alembic")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return str(candidate)
    raise FileNotFoundError(
        "Alembic migrations not found (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "); set VINTNER_ALEMBIC_DIR"
    )


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic ``Config`` without an ini file. ``env.py`` uses ``connection`` when given."""
    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    if url is not None:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other migrator can enter (module docstring)."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Outside any transaction (pysqlite's own transaction handling is off), on purpose.
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]


def upgrade(engine: Engine, revision: str = "head") -> None:
    with migration_connection(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with migration_connection(engine) as conn:
        command.downgrade(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()

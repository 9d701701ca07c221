"""Shared fixtures: which database the tests run on.

``VINTNER_TEST_DATABASE`` = ``sqlite`` (default) | ``postgresql`` selects the database behind
``database_url`` / ``repository``. PostgreSQL-only tests use ``pg_url`` (or ``pg_empty_url``)
whatever the variable says. If PostgreSQL is unreachable those tests are skipped with the
reason — unless ``VINTNER_REQUIRE_POSTGRES=1`` (CI), which turns the skip into a failure.
Tests using a PostgreSQL fixture are marked ``postgres`` automatically (``-m "not postgres"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.sql.repository import SqlRepository
from tests.support import db

pytest_plugins = ["tests.support.app"]

PG_FIXTURES = frozenset({"pg_url", "pg_empty_url", "_pg_server", "_pg_session_db"})


def _selected_database() -> str:
    value = os.environ.get("VINTNER_TEST_DATABASE", "sqlite").strip().lower()
    if value in ("postgres", "postgresql", "pg"):
        return "postgresql"
    if value in ("", "sqlite"):
        return "sqlite"
    raise pytest.UsageError(f"VINTNER_TEST_DATABASE must be sqlite or postgresql, not {value!r}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected_pg = _selected_database() == "postgresql"
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & PG_FIXTURES or (selected_pg and names & {"database_url", "repository"}):
            item.add_marker(pytest.mark.postgres)


# -- PostgreSQL -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _pg_server() -> str:
    """The admin URL of a reachable server, or skip (fail when VINTNER_REQUIRE_POSTGRES=1)."""
    reason = db.postgres_unavailable_reason()
    if reason is not None:
        if os.environ.get("VINTNER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (VINTNER_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(reason)
    return db.ADMIN_URL


@pytest.fixture(scope="session")
def _pg_session_db(_pg_server: str) -> Iterator[str]:
    """One migrated throwaway database for the whole session, dropped at the end."""
    name, url = db.create_database()
    try:
        db.migrate(url)
        yield url
    finally:
        db.drop_database(name)


@pytest.fixture
def pg_url(_pg_session_db: str) -> str:
    """URL of the migrated session database, emptied for this test."""
    db.truncate_all(_pg_session_db)
    return _pg_session_db


@pytest.fixture
def pg_empty_url(_pg_server: str) -> Iterator[str]:
    """URL of a brand-new, empty (unmigrated) database, dropped after the test."""
    name, url = db.create_database("vintner_empty")
    try:
        yield url
    finally:
        db.drop_database(name)


# -- SQLite -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return db.sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """URL of a migrated SQLite file of this test's own."""
    return db.copy_sqlite(_sqlite_template, tmp_path / "vintner.db")


@pytest.fixture
def sqlite_empty_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'empty.db'}"


# -- selected by VINTNER_TEST_DATABASE --------------------------------------------------------
@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of the selected kind."""
    if _selected_database() == "postgresql":
        return request.getfixturevalue("pg_url")
    return request.getfixturevalue("sqlite_url")


@pytest.fixture
def repository(database_url: str) -> Iterator[SqlRepository]:
    """A :class:`SqlRepository` on ``database_url`` (already migrated)."""
    repo = SqlRepository.from_url(database_url, {})
    try:
        yield repo
    finally:
        repo.close()

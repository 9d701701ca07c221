"""The repository contract against every built-in implementation.

SQLite and PostgreSQL both run here whatever ``VINTNER_TEST_DATABASE`` says (PostgreSQL is
skipped when unreachable, or fails with ``VINTNER_REQUIRE_POSTGRES=1``), and so does the
in-memory fake shipped for users' own tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backends.sql.repository import SqlRepository
from vintner.testing.fake_repository import FakeRepository
from vintner.testing.repository_contract import RepositoryContract


class TestSqliteRepository(RepositoryContract):
    @pytest.fixture
    def repo(self, sqlite_url: str) -> Iterator[SqlRepository]:
        repo = SqlRepository.from_url(sqlite_url, {})
        yield repo
        repo.close()


@pytest.mark.postgres
class TestPostgresRepository(RepositoryContract):
    @pytest.fixture
    def repo(self, pg_url: str) -> Iterator[SqlRepository]:
        repo = SqlRepository.from_url(pg_url, {})
        yield repo
        repo.close()


class TestFakeRepository(RepositoryContract):
    @pytest.fixture
    def repo(self) -> FakeRepository:
        return FakeRepository()

"""Many claimers, one queue: every job is claimed exactly once, none is left behind, and no
driver error ("database is locked", serialization failure, deadlock) escapes.

SQLite: 8 threads, and separately 4 processes, on one file database, 500 jobs.
PostgreSQL: 32 claimers with their own connections (32 threads, and separately 4 processes of
8 threads), 5,000 jobs. Every claim is followed by a compare-and-set completion, so claims
race with other writers too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from backends.sql.models import jobs
from backends.sql.repository import SqlRepository
from tests.support.claimers import run_processes, run_threads, seed


def _assert_each_claimed_once(repo: SqlRepository, claimed: list[str], total: int) -> None:
    duplicates = [job for job, n in Counter(claimed).items() if n > 1]
    assert duplicates == [], f"claimed more than once: {duplicates[:5]}"
    assert len(claimed) == total
    with repo.engine.connect() as conn:
        by_status = dict(
            conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
        )
        attempts = conn.execute(select(func.max(jobs.c.attempts))).scalar_one()
    assert by_status == {"SUCCESS": total}, by_status
    assert attempts == 1


@pytest.fixture
def sqlite_repo(sqlite_url: str) -> Iterator[SqlRepository]:
    repo = SqlRepository.from_url(sqlite_url, {"pool_size": 10})
    yield repo
    repo.close()


@pytest.fixture
def pg_repo(pg_url: str) -> Iterator[SqlRepository]:
    repo = SqlRepository.from_url(pg_url, {"pool_size": 34, "max_overflow": 4})
    yield repo
    repo.close()


def test_sqlite_threads(sqlite_repo: SqlRepository) -> None:
    workers = seed(sqlite_repo, jobs=500, workers=8)
    claimed, errors = run_threads(sqlite_repo, workers)
    assert errors == []
    _assert_each_claimed_once(sqlite_repo, claimed, 500)
    # every thread got work: the lock is shared fairly enough to matter
    with sqlite_repo.engine.connect() as conn:
        holders = conn.execute(select(func.count(func.distinct(jobs.c.worker_id)))).scalar_one()
    assert holders > 1


def test_sqlite_processes(sqlite_url: str, sqlite_repo: SqlRepository) -> None:
    workers = seed(sqlite_repo, jobs=500, workers=4)
    claimed, errors = run_processes(sqlite_url, workers, processes=4)
    assert errors == []
    _assert_each_claimed_once(sqlite_repo, claimed, 500)


@pytest.mark.postgres
def test_postgres_threads(pg_repo: SqlRepository) -> None:
    workers = seed(pg_repo, jobs=5000, workers=32)
    claimed, errors = run_threads(pg_repo, workers)
    assert errors == []
    _assert_each_claimed_once(pg_repo, claimed, 5000)


@pytest.mark.postgres
def test_postgres_processes(pg_url: str, pg_repo: SqlRepository) -> None:
    workers = seed(pg_repo, jobs=5000, workers=32)
    claimed, errors = run_processes(pg_url, workers, processes=4)
    assert errors == []
    _assert_each_claimed_once(pg_repo, claimed, 5000)

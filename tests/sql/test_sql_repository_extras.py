"""SqlRepository specifics outside the shared contract: URLs and options, error translation,
revision helpers, timestamp handling."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

from backends.sql.engine import normalize_url
from backends.sql.repository import SqlRepository
from vintner.domain.model import Job, JobType, StreamType, utcnow
from vintner.errors import ConfigError, InvalidInput, Unavailable


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request: pytest.FixtureRequest) -> Iterator[SqlRepository]:
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("sqlite_url")
    repo = SqlRepository.from_url(url, {})
    yield repo
    repo.close()


def test_url_normalisation() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db", "postgresql+psycopg2://u@h/db"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        SqlRepository.from_url(url, {})


def test_unknown_options_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="pool_sise"):
        SqlRepository.from_url(f"sqlite:///{tmp_path / 'x.db'}", {"pool_sise": 3})


def test_sqlite_creates_the_parent_folder(tmp_path) -> None:
    repo = SqlRepository.from_url(f"sqlite:///{tmp_path / 'instance' / 'vintner.db'}", {})
    try:
        repo.migrate()
        assert (tmp_path / "instance" / "vintner.db").exists()
    finally:
        repo.close()


def test_unreachable_postgres_is_unavailable() -> None:
    repo = SqlRepository.from_url("postgresql://nobody@127.0.0.1:1/nothing", {})
    try:
        with pytest.raises(Unavailable):
            repo.ping()
        with pytest.raises(Unavailable), repo.transaction() as tx:
            tx.get_job(uuid.uuid4())
        with pytest.raises(Unavailable):
            repo.claim_next_job(uuid.uuid4(), utcnow())
    finally:
        repo.close()


def test_revisions(repo: SqlRepository) -> None:
    assert repo.current_revision() == repo.head_revision() is not None


def test_naive_datetimes_are_refused(repo: SqlRepository) -> None:
    job = Job(id=uuid.uuid4(), job_type=JobType.PLAN, created_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"), repo.transaction() as tx:
        tx.add_job(job)


def test_foreign_key_violation_is_invalid_input(repo: SqlRepository) -> None:
    with pytest.raises(InvalidInput), repo.transaction() as tx:
        tx.append_log(uuid.uuid4(), "orphan", StreamType.STDOUT, None, utcnow())


@pytest.mark.postgres
def test_nul_character_on_postgres_is_invalid_input(pg_url: str) -> None:
    repo = SqlRepository.from_url(pg_url, {})
    try:
        job = Job(id=uuid.uuid4(), job_type=JobType.PLAN)
        with repo.transaction() as tx:
            tx.add_job(job)
        with pytest.raises(InvalidInput), repo.transaction() as tx:
            tx.append_log(job.id, "a\x00b", StreamType.STDOUT, None, utcnow())
        with pytest.raises(InvalidInput), repo.transaction() as tx:
            tx.update_job(job.id, {"execution_metadata": {"k": "a\x00b"}})
    finally:
        repo.close()

"""The Alembic history on both dialects: upgrade from empty, downgrade to base and back, the
models agree with the migrations, concurrent migrators, and the ``alembic`` command itself."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from backends.sql import migrations
from backends.sql.engine import build_engine, normalize_url
from backends.sql.models import metadata
from backends.sql.repository import SqlRepository

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = {t.name for t in metadata.sorted_tables}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("pg_empty_url")
    return request.getfixturevalue("sqlite_empty_url")


def _tables(repo: SqlRepository) -> set[str]:
    return set(inspect(repo.engine).get_table_names()) - {"alembic_version"}


def _has_claim_function(repo: SqlRepository) -> bool:
    with repo.engine.connect() as conn:
        return bool(
            conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'claim_next_job'"))
            .scalar_one()
        )


def test_upgrade_from_empty(empty_url: str) -> None:
    repo = SqlRepository.from_url(empty_url, {})
    try:
        assert migrations.current_revision(repo.engine) is None
        repo.migrate()
        assert migrations.current_revision(repo.engine) == migrations.head_revision()
        assert _tables(repo) == TABLES
        if repo.dialect == "postgresql":
            assert _has_claim_function(repo)
        repo.migrate()  # idempotent
        assert migrations.current_revision(repo.engine) == migrations.head_revision()
    finally:
        repo.close()


def test_downgrade_to_base_and_upgrade_again(empty_url: str) -> None:
    repo = SqlRepository.from_url(empty_url, {})
    try:
        repo.migrate()
        migrations.downgrade(repo.engine, "base")
        assert migrations.current_revision(repo.engine) is None
        assert _tables(repo) == set()
        if repo.dialect == "postgresql":
            assert not _has_claim_function(repo)
        repo.migrate()
        assert _tables(repo) == TABLES
        if repo.dialect == "postgresql":
            assert _has_claim_function(repo)
    finally:
        repo.close()


def test_models_match_migrations(empty_url: str) -> None:
    repo = SqlRepository.from_url(empty_url, {})
    try:
        repo.migrate()
        with repo.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
        assert diff == []
    finally:
        repo.close()


def test_concurrent_migrators(empty_url: str) -> None:
    """Several server processes starting at once all migrate; exactly one does the work."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def migrate() -> None:
        repo = SqlRepository.from_url(empty_url, {})
        try:
            barrier.wait()
            repo.migrate()
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)
        finally:
            repo.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    engine = build_engine(normalize_url(empty_url), {})
    try:
        assert migrations.current_revision(engine) == migrations.head_revision()
    finally:
        engine.dispose()


def test_alembic_command_line(empty_url: str) -> None:
    """``alembic -x url=... upgrade head`` from the repository root runs the same history."""
    env = {k: v for k, v in os.environ.items() if k != "VINTNER_DATABASE_URL"}
    for args in (["upgrade", "head"], ["current"], ["downgrade", "base"], ["upgrade", "head"]):
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "-x", f"url={empty_url}", *args],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
    engine = build_engine(normalize_url(empty_url), {})
    try:
        assert migrations.current_revision(engine) == migrations.head_revision()
    finally:
        engine.dispose()


def test_offline_sql_renders_for_postgresql() -> None:
    """``alembic upgrade head --sql`` (offline mode) renders the schema and the function."""
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", "url=postgresql+psycopg://u@h/db",
         "upgrade", "head", "--sql"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE jobs" in result.stdout
    assert "CREATE OR REPLACE FUNCTION claim_next_job" in result.stdout

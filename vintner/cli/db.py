"""``vintner db upgrade`` / ``vintner db current``: schema migrations through the repository.

These commands build only the repository, without the start-up migration the other commands
do, so ``db current`` reports the database as it is.
"""

from __future__ import annotations

from typing import Any

import click

from vintner.cli.context import CliError


def _repository() -> Any:
    from vintner.config import load_settings
    from vintner.registry import load_repository

    repo = load_repository(load_settings().database_url, {})
    click.get_current_context().call_on_close(repo.close)
    return repo


def revisions(repo: Any) -> tuple[str | None, str | None]:
    """(current, head) schema revisions, or raise CliError if the backend cannot tell.

    A repository plugin may offer ``current_revision()`` and ``head_revision()``; the built-in
    SQL backend answers through its Alembic helpers.
    """
    if hasattr(repo, "current_revision"):
        head = repo.head_revision() if hasattr(repo, "head_revision") else None
        return repo.current_revision(), head
    engine = getattr(repo, "engine", None)
    if engine is not None and type(repo).__module__.startswith("backends.sql"):
        from backends.sql import migrations

        return migrations.current_revision(engine), migrations.head_revision()
    raise CliError(f"The {type(repo).__name__} backend does not report schema revisions")


@click.group("db")
def db_group() -> None:
    """Database schema migrations (the same on SQLite and PostgreSQL)."""


@db_group.command("upgrade")
def upgrade_command() -> None:
    """Bring the schema to the newest revision (safe to run again)."""
    repo = _repository()
    repo.migrate()
    try:
        current, _ = revisions(repo)
    except CliError:
        click.echo("Database schema is up to date.")
        return
    click.echo(f"Database schema is at revision {current} (head).")


@db_group.command("current")
@click.option("--check", is_flag=True, help="Exit with status 1 unless the schema is at head.")
def current_command(check: bool) -> None:
    """Show the schema revision of the database (and whether it is the newest)."""
    current, head = revisions(_repository())
    if current is None:
        state = "empty database: run `vintner db upgrade`"
    elif head is None:
        state = "head unknown"
    elif current == head:
        state = "head"
    else:
        state = f"behind head {head}: run `vintner db upgrade`"
    click.echo(f"{current or '(none)'} ({state})")
    if check and (current is None or current != head):
        raise click.exceptions.Exit(1)

"""``vintner storage check``: prove the configured artifact store works, end to end.

Builds the store exactly as the server does (settings → registry), then writes, reads back,
and deletes a probe object, printing each step and what failed. Exit status 0 only if every
step passed. The main CLI registers :data:`storage_group`.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from vintner.errors import ConfigError, VintnerError
from vintner.ports.artifacts import ArtifactStore
from vintner.registry import load_artifact_store

T = TypeVar("T")
PROBE_SIZE = 256 * 1024 + 7  # several chunks, not chunk-aligned


@click.group("storage")
def storage_group() -> None:
    """Artifact-store tools."""


def _parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        options[name.strip()] = value
    return options


def resolve_store_config(
    uri: str | None, extra: Mapping[str, str], environ: Mapping[str, str] = os.environ
) -> tuple[str, dict[str, Any]]:
    """URI and options: vintner's settings (file, env) with ``--uri`` / ``--option`` on top.

    If the full settings cannot be loaded (say, a production setting this command does not
    need is missing), fall back to ``--uri`` or ``VINTNER_ARTIFACT_STORE`` alone.
    """
    try:
        from vintner.config import load_settings

        overrides = {"artifact_store": uri} if uri else None
        settings = load_settings(overrides=overrides, environ=environ)
        return settings.artifact_store, {**settings.store_options(), **extra}
    except (ConfigError, ImportError) as exc:
        fallback = uri or environ.get("VINTNER_ARTIFACT_STORE")
        if not fallback:
            raise ConfigError(
                f"No artifact store configured ({exc}); pass --uri or set VINTNER_ARTIFACT_STORE"
            ) from exc
        return fallback, dict(extra)


def _step(name: str, action: Callable[[], T]) -> tuple[bool, T | None]:
    click.echo(f"  {name:<10} ", nl=False)
    try:
        result = action()
    except VintnerError as exc:
        click.echo(click.style("FAILED", fg="red") + f"  {type(exc).__name__}: {exc.message}")
        return False, None
    except Exception as exc:  # a plugin bug: report it, do not hide it behind a traceback
        click.echo(click.style("FAILED", fg="red") + f"  unexpected {type(exc).__name__}: {exc}")
        return False, None
    click.echo(click.style("ok", fg="green"))
    return True, result


def run_check(store: ArtifactStore) -> bool:
    """Ping, put, exists, get (compare SHA-256), delete, exists-after-delete. True if all ok."""
    key = f"vintner-probe/{socket.gethostname() or 'host'}-{secrets.token_hex(6)}"
    key = "".join(c if c.isalnum() or c in "/._-" else "-" for c in key)
    payload = secrets.token_bytes(PROBE_SIZE)
    expected = hashlib.sha256(payload).hexdigest()
    results: list[bool] = []

    def put() -> None:
        stored = store.put(key, io.BytesIO(payload), max_bytes=PROBE_SIZE)  # type: ignore[arg-type]
        if (stored.size, stored.sha256) != (PROBE_SIZE, expected):
            raise VintnerError("the store recorded a different size or hash")

    def exists() -> None:
        if not store.exists(key):
            raise VintnerError("the probe object does not exist after put")

    def get() -> None:
        digest = hashlib.sha256()
        reader = store.open(key)
        try:
            for chunk in reader:
                digest.update(chunk)
        finally:
            reader.close()
        if digest.hexdigest() != expected:
            raise VintnerError("the bytes read back differ from the bytes written")

    def gone() -> None:
        if store.exists(key):
            raise VintnerError("the probe object still exists after delete")

    results.append(_step("ping", store.ping)[0])
    put_ok = _step("put", put)[0]
    results.append(put_ok)
    if put_ok:
        results.append(_step("exists", exists)[0])
        results.append(_step("get", get)[0])
    # Delete even after a failed put: a partial upload must not stay behind.
    results.append(_step("delete", lambda: store.delete(key))[0])
    if put_ok:
        results.append(_step("gone", gone)[0])
    return all(results)


@storage_group.command("check")
@click.option("--uri", help="Artifact store URI (default: VINTNER_ARTIFACT_STORE / config).")
@click.option(
    "--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
    help="Store option, repeatable (e.g. -o endpoint_url=http://localhost:9000).",
)
def check_command(uri: str | None, options: tuple[str, ...]) -> None:
    """Put, get and delete a probe object in the configured artifact store."""
    try:
        store_uri, store_options = resolve_store_config(uri, _parse_options(options))
        click.echo(f"Artifact store {store_uri}")
        click.echo(f"  options    {', '.join(sorted(store_options)) or '(none)'}")  # names only
        store = load_artifact_store(store_uri, store_options)
    except ConfigError as exc:
        click.echo(click.style("FAILED", fg="red") + f"  configuration: {exc.message}")
        sys.exit(2)
    try:
        ok = run_check(store)
    finally:
        store.close()
    click.echo("All checks passed." if ok else "Some checks failed.")
    sys.exit(0 if ok else 1)

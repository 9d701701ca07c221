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

from vintner.config import load_settings
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


#: Settings the check does not use. A missing or odd value there (say, no admin token with
#: VINTNER_ENV=production) must not make the check drop the store's own settings: an S3 probe
#: without its endpoint_url would go to AWS instead of the configured server.
_NOT_NEEDED: dict[str, Any] = {"env": "development", "admin_token": None, "log_level": "INFO"}


def resolve_store_config(
    uri: str | None, extra: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """URI and options exactly as the server builds them — vintner's settings (config file,
    ``VINTNER_*`` and ``SUPABASE_*`` variables) through :meth:`Settings.store_options` — with
    ``--uri`` / ``--option`` on top.

    Settings the store does not need are not validated (they are set to harmless values if they
    stop the settings from loading); a broken store setting or an unknown variable is reported
    as a :class:`ConfigError`, never silently dropped.
    """
    environ = os.environ if environ is None else environ
    overrides: dict[str, Any] = {"artifact_store": uri} if uri else {}
    try:
        settings = load_settings(overrides=overrides, environ=environ)
    except ConfigError:
        settings = load_settings(overrides={**overrides, **_NOT_NEEDED}, environ=environ)
    return settings.artifact_store, {**settings.store_options(), **extra}


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

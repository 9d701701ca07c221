"""``vintner vines …``: create and update from a JSON/TOML document, list, show."""

from __future__ import annotations

import json
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import click

from vintner.api import serializers
from vintner.api.operator_schemas import VineCreateSchema, VinePatchSchema
from vintner.cli.context import (
    CliError,
    echo_json,
    echo_listing,
    json_option,
    load_with,
    services,
)
from vintner.domain import vines
from vintner.domain.model import Vine, utcnow
from vintner.ports.repository import Page


@click.group("vines")
def vines_group() -> None:
    """Vines: infrastructure documents (the same shape as the API's)."""


def read_document(path: str) -> Any:
    """A vine document from a ``.json`` or ``.toml`` file (``-`` = JSON or TOML on stdin).

    Any other extension is tried as JSON, then as TOML. TOML has no null: leave a field out
    instead.
    """
    if path == "-":
        text, suffix = sys.stdin.read(), ""
    else:
        try:
            text, suffix = Path(path).read_text(encoding="utf-8"), Path(path).suffix.lower()
        except OSError as exc:
            raise CliError(f"Cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CliError(f"{path} is not UTF-8 text") from None
    if suffix == ".toml":
        parsers = [_toml]
    elif suffix == ".json":
        parsers = [_json]
    else:
        parsers = [_json, _toml]
    errors = []
    for parse in parsers:
        try:
            return parse(text)
        except ValueError as exc:
            errors.append(str(exc))
    raise CliError(f"{path} is not a valid vine document: {'; '.join(errors)}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc})") from None


def _toml(text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"invalid TOML ({exc})") from None


def _v(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _echo_vine(vine: Vine, as_json: bool) -> None:
    if as_json:
        echo_json(serializers.vine(vine))
        return
    click.echo(f"Vine {vine.id}  {vine.project_name} ({vine.environment_stage.value}, "
               f"{vine.region})  {vine.status.value}")
    if vine.status_message:
        click.echo(f"  status message: {vine.status_message}")
    click.echo(f"  vineyard:       {vine.vineyard_id}")
    click.echo(f"  cloud identity: {_v(vine.cloud_identity_id)}")
    variables = (vine.terraform or {}).get("variables") or {}
    click.echo(f"  terraform:      module {_v((vine.terraform or {}).get('module'))}, "
               f"version {_v(vine.terraform_version)}, {len(variables)} variable(s)")
    c = vine.cluster
    if c is not None:
        sizes = "/".join(_v(n) for n in (c.node_min_size, c.node_desired_size, c.node_max_size))
        click.echo(f"  cluster:        version {_v(c.cluster_version)}, "
                   f"{_v(','.join(c.instance_types or []))}, nodes min/desired/max {sizes}"
                   f"  [{c.status.value}] {_v(c.cluster_endpoint)}")
    for d in vine.databases:
        click.echo(f"  database {d.name}: {_v(d.engine)} {_v(d.engine_version)}, capacity "
                   f"{_v(d.min_capacity)}-{_v(d.max_capacity)}  [{d.status.value}] "
                   f"{_v(d.endpoint)}")
    for k in vine.caches:
        click.echo(f"  cache {k.name}: {_v(k.engine)} {_v(k.node_type)} "
                   f"x{_v(k.num_cache_nodes)}  [{k.status.value}] {_v(k.endpoint)}")
    n = vine.network
    if n is not None:
        click.echo(f"  network:        {_v(n.cidr_block or n.network_id)}"
                   f"{' (provisioned)' if n.provision_network else ''}  [{n.status.value}]")


@vines_group.command("create")
@click.argument("file")
@json_option
def create_command(file: str, as_json: bool) -> None:
    """Create a DRAFT vine from FILE (JSON or TOML; ``-`` for stdin)."""
    body = load_with(VineCreateSchema(), read_document(file), "vine document")
    _echo_vine(vines.create_vine(services().repository, body, utcnow()), as_json)


@vines_group.command("update")
@click.argument("vine_id", type=click.UUID)
@click.argument("file")
@json_option
def update_command(vine_id: uuid.UUID, file: str, as_json: bool) -> None:
    """Change a vine with the fields in FILE (like PATCH /api/vines/ID)."""
    body = load_with(VinePatchSchema(), read_document(file), "vine document")
    _echo_vine(vines.update_vine(services().repository, vine_id, body, utcnow()), as_json)


@vines_group.command("list")
@click.option("--vineyard", "vineyard_id", type=click.UUID, help="Only this vineyard's vines.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@json_option
def list_command(vineyard_id: uuid.UUID | None, limit: int, offset: int, as_json: bool) -> None:
    """Vines."""
    with services().repository.transaction(readonly=True) as tx:
        items, total = tx.list_vines(Page(limit=limit, offset=offset), vineyard_id=vineyard_id)
    rows = [serializers.vine(v) for v in items]
    echo_listing("vines", rows, total, limit, offset, as_json=as_json,
                 columns=[("id", "ID"), ("project_name", "PROJECT"),
                           ("environment_stage", "STAGE"), ("region", "REGION"),
                           ("status", "STATUS"), ("vineyard_id", "VINEYARD")],
                 empty="No vines.")


@vines_group.command("show")
@click.argument("vine_id", type=click.UUID)
@json_option
def show_command(vine_id: uuid.UUID, as_json: bool) -> None:
    """One vine with its components."""
    _echo_vine(vines.get_vine(services().repository, vine_id), as_json)

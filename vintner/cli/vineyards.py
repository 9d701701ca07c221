"""``vintner vineyards …``: create, list, show."""

from __future__ import annotations

import uuid

import click

from vintner.api import serializers
from vintner.api.operator_schemas import VineyardCreateSchema
from vintner.cli.context import (
    echo_fields,
    echo_json,
    echo_listing,
    json_option,
    load_with,
    services,
)
from vintner.domain import vines
from vintner.domain.model import Vineyard, utcnow
from vintner.ports.repository import Page


@click.group("vineyards")
def vineyards_group() -> None:
    """Vineyards: named groups of vines."""


def _show(vineyard: Vineyard, as_json: bool) -> None:
    if as_json:
        echo_json(serializers.vineyard(vineyard))
    else:
        echo_fields([("id", vineyard.id), ("name", vineyard.name),
                     ("description", vineyard.description)])


@vineyards_group.command("create")
@click.argument("name")
@click.option("--description")
@json_option
def create_command(name: str, description: str | None, as_json: bool) -> None:
    """Create a vineyard (names are unique)."""
    body = load_with(VineyardCreateSchema(), {"name": name, "description": description},
                     "vineyard")
    _show(vines.create_vineyard(services().repository, name=body["name"],
                                description=body["description"], now=utcnow()), as_json)


@vineyards_group.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@json_option
def list_command(limit: int, offset: int, as_json: bool) -> None:
    """Vineyards."""
    with services().repository.transaction(readonly=True) as tx:
        items, total = tx.list_vineyards(Page(limit=limit, offset=offset))
    rows = [serializers.vineyard(v) for v in items]
    echo_listing("vineyards", rows, total, limit, offset, as_json=as_json,
                 columns=[("id", "ID"), ("name", "NAME"), ("description", "DESCRIPTION")],
                 empty="No vineyards.")


@vineyards_group.command("show")
@click.argument("vineyard_id", type=click.UUID)
@json_option
def show_command(vineyard_id: uuid.UUID, as_json: bool) -> None:
    """One vineyard."""
    _show(vines.get_vineyard(services().repository, vineyard_id), as_json)

"""Vines and vineyards as operators create and change them (the operator API's documents)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from vintner.domain.model import (
    CACHE_CONFIG_FIELDS,
    CLUSTER_CONFIG_FIELDS,
    DATABASE_CONFIG_FIELDS,
    NETWORK_CONFIG_FIELDS,
    EnvironmentStage,
    Vine,
    VineCache,
    VineCluster,
    VineDatabase,
    VineNetwork,
    Vineyard,
    new_id,
)
from vintner.errors import InvalidInput, NotFound
from vintner.ports.repository import Repository, Transaction

VINE_FIELDS = (
    "cloud_identity_id", "project_name", "environment_stage", "region", "terraform_version",
    "terraform",
)

Row = TypeVar("Row", VineDatabase, VineCache)


def create_vineyard(repo: Repository, *, name: str, description: str | None,
                    now: datetime) -> Vineyard:
    vineyard = Vineyard(id=new_id(), name=name, description=description, created_at=now,
                        updated_at=now)
    with repo.transaction() as tx:
        tx.add_vineyard(vineyard)
    return vineyard


def get_vineyard(repo: Repository, vineyard_id: uuid.UUID) -> Vineyard:
    with repo.transaction(readonly=True) as tx:
        vineyard = tx.get_vineyard(vineyard_id)
    if vineyard is None:
        raise NotFound("Vineyard not found")
    return vineyard


def get_vine(repo: Repository, vine_id: uuid.UUID) -> Vine:
    with repo.transaction(readonly=True) as tx:
        vine = tx.get_vine(vine_id)
    if vine is None:
        raise NotFound("Vine not found")
    return vine


def _check_refs(tx: Transaction, data: Mapping[str, Any]) -> None:
    if "vineyard_id" in data and tx.get_vineyard(data["vineyard_id"]) is None:
        raise NotFound("Vineyard not found")
    identity_id = data.get("cloud_identity_id")
    if identity_id is not None and tx.get_cloud_identity(identity_id) is None:
        raise NotFound("Cloud identity not found")


def _unique_names(label: str, items: Sequence[Mapping[str, Any]]) -> None:
    names = [item["name"] for item in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"{label} names must be unique within a vine: {', '.join(duplicates)}",
                           errors={label: [f"Duplicate name: {n}" for n in duplicates]})


def _reconcile(existing: list[Row], wanted: Sequence[Mapping[str, Any]], fields: tuple[str, ...],
               make: type[Row], now: datetime) -> list[Row]:
    """Rows for ``wanted`` (matched by name, so a kept row keeps its id, status and outputs)."""
    by_name = {row.name: row for row in existing}
    rows: list[Row] = []
    for item in wanted:
        row = by_name.get(item["name"]) or make(id=new_id(), name=item["name"], created_at=now)
        for name in fields:
            if name in item:
                setattr(row, name, item[name])
        row.updated_at = now
        rows.append(row)
    return rows


def _apply(vine: Vine, data: Mapping[str, Any], now: datetime) -> None:
    for name in VINE_FIELDS:
        if name in data:
            setattr(vine, name, data[name])
    if "environment_stage" in data:
        try:
            vine.environment_stage = EnvironmentStage(data["environment_stage"])
        except ValueError:
            allowed = ", ".join(s.value for s in EnvironmentStage)
            raise InvalidInput(f"environment_stage must be one of: {allowed}",
                               errors={"environment_stage": [f"Must be one of: {allowed}."]}
                               ) from None
    if "cluster" in data:
        cluster = vine.cluster or VineCluster(id=new_id(), created_at=now)
        for name in CLUSTER_CONFIG_FIELDS:
            if name in (data["cluster"] or {}):
                setattr(cluster, name, data["cluster"][name])
        cluster.updated_at = now
        vine.cluster = cluster
    if "databases" in data:
        _unique_names("databases", data["databases"])
        vine.databases = _reconcile(vine.databases, data["databases"], DATABASE_CONFIG_FIELDS,
                                    VineDatabase, now)
    if "caches" in data:
        _unique_names("caches", data["caches"])
        vine.caches = _reconcile(vine.caches, data["caches"], CACHE_CONFIG_FIELDS, VineCache, now)
    if "network" in data:
        if data["network"] is None:
            vine.network = None
        else:
            network = vine.network or VineNetwork(id=new_id(), created_at=now)
            for name in NETWORK_CONFIG_FIELDS:
                if name in data["network"]:
                    setattr(network, name, data["network"][name])
            network.updated_at = now
            vine.network = network
    vine.updated_at = now


def create_vine(repo: Repository, data: Mapping[str, Any], now: datetime) -> Vine:
    """A DRAFT vine with its components; every vine has a cluster row (finalize fills it)."""
    vine = Vine(id=new_id(), vineyard_id=data["vineyard_id"], project_name=data["project_name"],
                created_at=now, updated_at=now)
    _apply(vine, {"cluster": {}, **data}, now)
    with repo.transaction() as tx:
        _check_refs(tx, data)
        tx.add_vine(vine)
    return vine


def update_vine(repo: Repository, vine_id: uuid.UUID, data: Mapping[str, Any],
                now: datetime) -> Vine:
    """PATCH: change the given configuration fields. Jobs already enqueued keep their snapshot."""
    with repo.transaction() as tx:
        vine = tx.get_vine(vine_id, for_update=True)
        if vine is None:
            raise NotFound("Vine not found")
        if "vineyard_id" in data and data["vineyard_id"] != vine.vineyard_id:
            raise InvalidInput("A vine cannot move to another vineyard",
                               errors={"vineyard_id": ["Cannot be changed."]})
        _check_refs(tx, data)
        _apply(vine, data, now)
        tx.save_vine(vine)
        return vine

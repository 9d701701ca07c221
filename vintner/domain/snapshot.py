"""config_snapshot and configuration_hash (domain.md "Enqueueing").

The snapshot is the vine's configuration at enqueue time: every vine column except status,
status_message and timestamps, the provider of its cloud identity, and the configuration columns
of its components (not their status, ids, or the columns finalize fills). The hash is the SHA-256
of the canonical JSON (sorted keys, no insignificant whitespace), so it changes only when the
configuration does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vintner.domain.model import (
    CACHE_CONFIG_FIELDS,
    CLUSTER_CONFIG_FIELDS,
    DATABASE_CONFIG_FIELDS,
    NETWORK_CONFIG_FIELDS,
    JsonObject,
    Vine,
)


def _pick(obj: object, fields: tuple[str, ...]) -> JsonObject:
    # component configuration columns are all plain JSON values (str, numbers, bools, lists)
    return {name: getattr(obj, name) for name in fields}


def build_snapshot(vine: Vine, provider: str | None) -> JsonObject:
    """The config_snapshot of a PLAN/DEPLOY/DESTROY job for ``vine``."""
    return {
        "vine_id": str(vine.id),
        "vineyard_id": str(vine.vineyard_id),
        "cloud_identity_id": str(vine.cloud_identity_id) if vine.cloud_identity_id else None,
        "project_name": vine.project_name,
        "environment_stage": str(vine.environment_stage),
        "region": vine.region,
        "terraform_version": vine.terraform_version,
        "terraform": vine.terraform,
        "provider": provider,
        "cluster": _pick(vine.cluster, CLUSTER_CONFIG_FIELDS) if vine.cluster else None,
        "databases": sorted(
            (_pick(d, DATABASE_CONFIG_FIELDS) for d in vine.databases), key=lambda d: d["name"]
        ),
        "caches": sorted(
            (_pick(c, CACHE_CONFIG_FIELDS) for c in vine.caches), key=lambda c: c["name"]
        ),
        "network": _pick(vine.network, NETWORK_CONFIG_FIELDS) if vine.network else None,
    }


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def configuration_hash(snapshot: JsonObject) -> str:
    return hashlib.sha256(canonical_json(snapshot).encode("utf-8")).hexdigest()

"""Domain objects → the JSON objects of worker-api.md and the operator API.

Timestamps are ISO 8601 with an explicit UTC offset; ids are strings (log ids are integers).
``token_hash`` is never serialised.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from vintner.domain.liveness import Timings, effective_status
from vintner.domain.model import (
    CloudIdentity,
    Job,
    LogChunk,
    Provider,
    Vine,
    VineCache,
    VineCluster,
    VineDatabase,
    VineNetwork,
    Vineyard,
    Worker,
)

JsonObject = dict[str, Any]


def ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _id(value: Any) -> str | None:
    return str(value) if value is not None else None


def job(j: Job) -> JsonObject:
    return {
        "id": str(j.id),
        "job_type": j.job_type.value,
        "status": j.status.value,
        "config_snapshot": j.config_snapshot,
        "configuration_hash": j.configuration_hash,
        "vine_id": _id(j.vine_id),
        "vineyard_id": _id(j.vineyard_id),
        "cloud_identity_id": _id(j.cloud_identity_id),
        "plan_job_id": _id(j.plan_job_id),
        "worker_id": _id(j.worker_id),
        "assigned_worker_id": _id(j.assigned_worker_id),
        "attempts": j.attempts,
        "max_attempts": j.max_attempts,
        "cancel_requested": j.cancel_requested,
        "claimed_at": ts(j.claimed_at),
        "started_at": ts(j.started_at),
        "completed_at": ts(j.completed_at),
        "error_message": j.error_message,
        "execution_metadata": j.execution_metadata,
        "created_at": ts(j.created_at),
        "updated_at": ts(j.updated_at),
    }


def worker(w: Worker, now: datetime, timings: Timings) -> JsonObject:
    return {
        "id": str(w.id),
        "name": w.name,
        "mode": w.mode.value,
        "status": effective_status(w, now, timings).value,
        "version": w.version,
        "last_heartbeat": ts(w.last_heartbeat),
        "cloud_identity_id": _id(w.cloud_identity_id),
        "metadata": w.metadata,
        "created_at": ts(w.created_at),
    }


def cloud_identity(c: CloudIdentity) -> JsonObject:
    """The operator's view (credentials hold no secret: role ARNs, ids, WIF config)."""
    return {
        "id": str(c.id),
        "provider": c.provider.value,
        "name": c.name,
        "credentials": c.credentials,
        "is_verified": c.is_verified,
        "created_at": ts(c.created_at),
        "updated_at": ts(c.updated_at),
    }


def claim_identity(c: CloudIdentity | None) -> JsonObject | None:
    """The ``cloud_identity`` of a claim response, by provider (worker-api.md)."""
    if c is None:
        return None
    creds = c.credentials
    if c.provider == Provider.AWS:
        keys = ("role_arn", "external_id", "account_id")
    elif c.provider == Provider.GCP:
        keys = ("project_id", "project_number", "service_account_email")
    else:
        keys = ("tenant_id", "client_id", "subscription_id")
    out: JsonObject = {"provider": c.provider.value, **{k: creds.get(k) for k in keys}}
    if c.provider == Provider.GCP:
        out["wif_config"] = json.dumps(creds.get("wif_config") or {}, separators=(",", ":"))
    return out


def vineyard(v: Vineyard) -> JsonObject:
    return {"id": str(v.id), "name": v.name, "description": v.description,
            "created_at": ts(v.created_at), "updated_at": ts(v.updated_at)}


def _component(c: VineCluster | VineDatabase | VineCache | VineNetwork | None) -> JsonObject | None:
    if c is None:
        return None
    out: JsonObject = {}
    for f in fields(c):
        value = getattr(c, f.name)
        if isinstance(value, datetime):
            value = ts(value)
        elif f.name == "id":
            value = str(value)
        elif f.name == "status":
            value = value.value
        out[f.name] = value
    return out


def vine(v: Vine) -> JsonObject:
    return {
        "id": str(v.id),
        "vineyard_id": str(v.vineyard_id),
        "cloud_identity_id": _id(v.cloud_identity_id),
        "project_name": v.project_name,
        "environment_stage": v.environment_stage.value,
        "region": v.region,
        "terraform_version": v.terraform_version,
        "terraform": v.terraform,
        "status": v.status.value,
        "status_message": v.status_message,
        "created_at": ts(v.created_at),
        "updated_at": ts(v.updated_at),
        "cluster": _component(v.cluster),
        "databases": [_component(d) for d in v.databases],
        "caches": [_component(c) for c in v.caches],
        "network": _component(v.network),
    }


def log_chunk(c: LogChunk) -> JsonObject:
    return {"id": c.id, "job_id": str(c.job_id), "log_chunk": c.log_chunk,
            "stream_type": c.stream_type.value if hasattr(c.stream_type, "value")
            else c.stream_type, "seq": c.seq, "created_at": ts(c.created_at)}


def listing(name: str, items: list[JsonObject], total: int, limit: int,
            offset: int) -> JsonObject:
    return {name: items, "total": total, "limit": limit, "offset": offset}

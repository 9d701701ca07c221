"""Rows ↔ domain dataclasses. Pure functions, no database access.

``to_row`` functions produce the column dict for an INSERT/UPDATE; ``from_row`` functions turn
a ``RowMapping`` back into the dataclass, converting strings to the domain's enums.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

from vintner.domain.model import (
    CloudIdentity,
    ComponentStatus,
    EnvironmentStage,
    Job,
    JobStatus,
    JobType,
    LogChunk,
    PlanArtifact,
    Provider,
    StateLock,
    StreamType,
    Vine,
    VineCache,
    VineCluster,
    VineDatabase,
    VineNetwork,
    VineStatus,
    Vineyard,
    Worker,
    WorkerMode,
    WorkerStatus,
)

Row = Mapping[str, Any]

#: Job fields that ``update_job`` may change (every column but the primary key).
JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(Job)) - {"id"}

_COMPONENT_CLASSES: dict[str, type] = {
    "cluster": VineCluster,
    "databases": VineDatabase,
    "caches": VineCache,
    "network": VineNetwork,
}


def _fields(obj: Any) -> dict[str, Any]:
    # Shallow on purpose: dataclasses.asdict would deep-copy and recurse into components.
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


# -- workers ----------------------------------------------------------------------------------
def worker_to_row(worker: Worker) -> dict[str, Any]:
    return _fields(worker)


def worker_from_row(row: Row) -> Worker:
    return Worker(
        id=row["id"],
        name=row["name"],
        mode=WorkerMode(row["mode"]),
        token_hash=row["token_hash"],
        status=WorkerStatus(row["status"]),
        version=row["version"],
        last_heartbeat=row["last_heartbeat"],
        cloud_identity_id=row["cloud_identity_id"],
        metadata=dict(row["metadata"] or {}),
        created_at=row["created_at"],
        deleted_at=row["deleted_at"],
    )


# -- cloud identities -------------------------------------------------------------------------
def identity_to_row(identity: CloudIdentity) -> dict[str, Any]:
    return _fields(identity)


def identity_from_row(row: Row) -> CloudIdentity:
    return CloudIdentity(
        id=row["id"],
        provider=Provider(row["provider"]),
        name=row["name"],
        credentials=dict(row["credentials"] or {}),
        is_verified=bool(row["is_verified"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# -- vineyards --------------------------------------------------------------------------------
def vineyard_to_row(vineyard: Vineyard) -> dict[str, Any]:
    return _fields(vineyard)


def vineyard_from_row(row: Row) -> Vineyard:
    return Vineyard(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# -- vines ------------------------------------------------------------------------------------
def vine_to_row(vine: Vine) -> dict[str, Any]:
    row = _fields(vine)
    for key in _COMPONENT_CLASSES:
        del row[key]
    return row


def vine_from_row(row: Row) -> Vine:
    return Vine(
        id=row["id"],
        vineyard_id=row["vineyard_id"],
        project_name=row["project_name"],
        cloud_identity_id=row["cloud_identity_id"],
        environment_stage=EnvironmentStage(row["environment_stage"]),
        region=row["region"],
        terraform_version=row["terraform_version"],
        terraform=dict(row["terraform"] or {}),
        status=VineStatus(row["status"]),
        status_message=row["status_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def component_to_row(component: Any, vine_id: uuid.UUID) -> dict[str, Any]:
    row = _fields(component)
    row["vine_id"] = vine_id
    return row


def component_from_row(kind: str, row: Row) -> Any:
    cls = _COMPONENT_CLASSES[kind]
    values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
    values["status"] = ComponentStatus(values["status"])
    if kind == "cluster" and values["instance_types"] is not None:
        values["instance_types"] = list(values["instance_types"])
    if kind == "network":
        values["provision_network"] = bool(values["provision_network"])
    return cls(**values)


# -- jobs -------------------------------------------------------------------------------------
def job_to_row(job: Job) -> dict[str, Any]:
    return _fields(job)


def job_from_row(row: Row) -> Job:
    before = row["vine_status_before"]
    return Job(
        id=row["id"],
        job_type=JobType(row["job_type"]),
        status=JobStatus(row["status"]),
        config_snapshot=dict(row["config_snapshot"] or {}),
        configuration_hash=row["configuration_hash"],
        vine_id=row["vine_id"],
        vineyard_id=row["vineyard_id"],
        cloud_identity_id=row["cloud_identity_id"],
        plan_job_id=row["plan_job_id"],
        worker_id=row["worker_id"],
        assigned_worker_id=row["assigned_worker_id"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        cancel_requested_at=row["cancel_requested_at"],
        vine_status_before=VineStatus(before) if before is not None else None,
        claimed_at=row["claimed_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        error_message=row["error_message"],
        execution_metadata=dict(row["execution_metadata"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# -- logs, artifacts, locks -------------------------------------------------------------------
def log_from_row(row: Row) -> LogChunk:
    return LogChunk(
        id=int(row["id"]),
        job_id=row["job_id"],
        log_chunk=row["log_chunk"],
        stream_type=StreamType(row["stream_type"]),
        seq=row["seq"],
        created_at=row["created_at"],
    )


def artifact_to_row(artifact: PlanArtifact) -> dict[str, Any]:
    return _fields(artifact)


def artifact_from_row(row: Row) -> PlanArtifact:
    return PlanArtifact(
        job_id=row["job_id"],
        key=row["key"],
        size=int(row["size"]),
        sha256=row["sha256"],
        created_at=row["created_at"],
    )


def lock_to_row(lock: StateLock) -> dict[str, Any]:
    return _fields(lock)


def lock_from_row(row: Row) -> StateLock:
    return StateLock(
        vine_id=row["vine_id"],
        lock_id=row["lock_id"],
        info=dict(row["info"] or {}),
        worker_id=row["worker_id"],
        created_at=row["created_at"],
    )

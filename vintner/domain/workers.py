"""Worker lifecycle: registration, authentication, heartbeat, metadata, token rotation, revoke."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vintner.domain import recovery
from vintner.domain.liveness import Timings
from vintner.domain.model import JsonObject, Worker, WorkerMode, WorkerStatus, new_id
from vintner.domain.tokens import hash_token, new_worker_token, token_matches
from vintner.errors import NotFound, TooLarge, Unauthorized
from vintner.ports.repository import Repository

MAX_METADATA_BYTES = 64 * 1024
MISSING_CREDENTIALS = "Missing X-Worker-ID or X-Worker-Token"
INVALID_CREDENTIALS = "Invalid worker ID or token"


def encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def check_metadata_size(metadata: JsonObject) -> None:
    if encoded_size(metadata) > MAX_METADATA_BYTES:
        raise TooLarge("metadata exceeds 64 KiB when encoded")


@dataclass(frozen=True)
class Registration:
    worker: Worker
    token: str  # plaintext: returned once, never stored


def register(
    repo: Repository,
    *,
    name: str,
    mode: WorkerMode,
    cloud_identity_id: uuid.UUID | None,
    metadata: JsonObject,
    now: datetime,
) -> Registration:
    check_metadata_size(metadata)
    token = new_worker_token()
    worker = Worker(
        id=new_id(), name=name, mode=mode, token_hash=hash_token(token),
        cloud_identity_id=cloud_identity_id, metadata=dict(metadata), created_at=now,
    )
    with repo.transaction() as tx:
        if cloud_identity_id is not None and tx.get_cloud_identity(cloud_identity_id) is None:
            raise NotFound("Cloud identity not found")
        tx.add_worker(worker)
    return Registration(worker=worker, token=token)


def authenticate(repo: Repository, worker_id: str | None, token: str | None) -> Worker:
    """The worker behind the ``X-Worker-ID`` / ``X-Worker-Token`` headers, or 401."""
    if not worker_id or not token:
        raise Unauthorized(MISSING_CREDENTIALS)
    try:
        wid = uuid.UUID(worker_id)
    except (ValueError, AttributeError, TypeError):
        raise Unauthorized(INVALID_CREDENTIALS) from None
    with repo.transaction(readonly=True) as tx:
        worker = tx.get_worker(wid)
    # compare even when the worker is unknown, so timing does not reveal which ids exist
    expected = worker.token_hash if worker is not None else hash_token("")
    if not token_matches(token, expected) or worker is None:
        raise Unauthorized(INVALID_CREDENTIALS)
    return worker


def heartbeat(
    repo: Repository,
    worker_id: uuid.UUID,
    *,
    version: str | None,
    status: WorkerStatus | None,
    now: datetime,
    timings: Timings,
    reports_current_job: bool = False,
    current_job_id: uuid.UUID | None = None,
) -> tuple[Worker, list[uuid.UUID]]:
    """Record a heartbeat; return the worker and the ids of its jobs with a cancel request.

    When the heartbeat reports ``current_job_id`` (null meaning idle), CLAIMED jobs the worker
    long holds without running them are released (:func:`recovery.release_unreported_claims`).
    """
    if reports_current_job:
        recovery.release_unreported_claims(repo, worker_id, current_job_id, now=now,
                                           timings=timings)
    with repo.transaction() as tx:
        worker = tx.get_worker(worker_id)
        if worker is None:  # revoked between authentication and now
            raise Unauthorized(INVALID_CREDENTIALS)
        worker.last_heartbeat = now
        if version is not None:
            worker.version = version
        # worker-api.md: "status ONLINE (or DRAINING if asked)" -- every heartbeat states it;
        # the agent repeats DRAINING in each heartbeat while it drains
        worker.status = status or WorkerStatus.ONLINE
        tx.save_worker(worker)
        return worker, tx.cancel_requested_job_ids(worker_id)


def get_worker(repo: Repository, worker_id: uuid.UUID) -> Worker:
    with repo.transaction(readonly=True) as tx:
        worker = tx.get_worker(worker_id)
    if worker is None:
        raise NotFound("Worker not found")
    return worker


def merge_metadata(repo: Repository, worker_id: uuid.UUID, patch: Mapping[str, Any]) -> Worker:
    """Shallow merge; a key whose value is null is removed; at most 64 KiB after merging."""
    with repo.transaction() as tx:
        worker = tx.get_worker(worker_id)
        if worker is None:
            raise NotFound("Worker not found")
        merged = dict(worker.metadata)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        check_metadata_size(merged)
        worker.metadata = merged
        tx.save_worker(worker)
        return worker


def rotate_token(repo: Repository, worker_id: uuid.UUID) -> Registration:
    """A new token; the old one stops working on its next request."""
    token = new_worker_token()
    with repo.transaction() as tx:
        worker = tx.get_worker(worker_id)
        if worker is None:
            raise NotFound("Worker not found")
        worker.token_hash = hash_token(token)
        tx.save_worker(worker)
    return Registration(worker=worker, token=token)


def revoke(repo: Repository, worker_id: uuid.UUID, *, now: datetime) -> None:
    """Revoke the token at once and recover the worker's jobs as if it went offline."""
    with repo.transaction() as tx:
        worker = tx.get_worker(worker_id)
        if worker is None:
            raise NotFound("Worker not found")
        worker.deleted_at = now
        worker.status = WorkerStatus.OFFLINE
        tx.save_worker(worker)
    recovery.recover_worker_jobs(repo, worker_id, now=now, reason="the worker was deleted")


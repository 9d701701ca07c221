"""Plan artifacts: who may upload and download them, and where they live in the store."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import BinaryIO

from vintner.domain.jobs import JOB_NOT_FOUND, NOT_HELD, visible_job
from vintner.domain.model import PlanArtifact, Worker
from vintner.errors import ArtifactNotFound, Conflict, NotFound
from vintner.ports.artifacts import ArtifactReader, ArtifactStore, StoredArtifact
from vintner.ports.repository import Repository

PLAN_FILENAME = "terraform.plan.out"
PLAN_NOT_FOUND = "Plan artifact not found"


def plan_key(job_id: uuid.UUID) -> str:
    return f"{job_id}/{PLAN_FILENAME}"


def check_uploader(repo: Repository, worker: Worker, job_id: uuid.UUID) -> None:
    """Only the holder of a CLAIMED or PROCESSING job uploads its plan (404 / 409 otherwise)."""
    with repo.transaction(readonly=True) as tx:
        job = tx.get_job(job_id)
    if job is None:
        raise NotFound(JOB_NOT_FOUND)
    if job.worker_id != worker.id:
        raise Conflict(NOT_HELD)
    if not job.status.held:
        raise Conflict(f"Job is {job.status.value}; its plan artifact can no longer change")


def store_plan(
    repo: Repository, store: ArtifactStore, worker: Worker, job_id: uuid.UUID, source: BinaryIO,
    *, max_bytes: int, now: datetime,
) -> StoredArtifact:
    """Stream ``source`` into the store (atomic replace) and record size and SHA-256.

    The holder is checked again when the row is recorded: a worker that lost the job while
    its upload streamed (recovery, timeout) gets 409 like any other late write, and no row
    points at its bytes.
    """
    stored = store.put(plan_key(job_id), source, max_bytes=max_bytes)
    with repo.transaction() as tx:
        job = tx.get_job(job_id)
        if job is None or job.worker_id != worker.id or not job.status.held:
            raise Conflict(NOT_HELD)
        tx.save_plan_artifact(PlanArtifact(job_id=job_id, key=stored.key, size=stored.size,
                                           sha256=stored.sha256, created_at=now))
    return stored


def open_plan(
    repo: Repository, store: ArtifactStore, job_id: uuid.UUID, worker: Worker | None
) -> tuple[PlanArtifact, ArtifactReader]:
    """The artifact row and a streaming reader, for whoever may read the job."""
    visible_job(repo, job_id, worker)
    with repo.transaction(readonly=True) as tx:
        row = tx.get_plan_artifact(job_id)
    if row is None:
        raise NotFound(PLAN_NOT_FOUND)
    try:
        return row, store.open(row.key)
    except ArtifactNotFound:
        raise NotFound(PLAN_NOT_FOUND) from None

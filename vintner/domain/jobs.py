"""Job services: enqueue, a worker's status posts, operator cancel, logs, read access.

Every state change is a compare-and-set on the status (and holder) read in the same
transaction; the vine side effects are applied in that transaction too. The vine row is locked
before the job is changed, in every service, so concurrent writers take locks in one order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vintner.domain import state_machine, vine_effects
from vintner.domain.liveness import Timings
from vintner.domain.model import (
    ClaimedJob,
    Job,
    JobStatus,
    JobType,
    JsonObject,
    LogChunk,
    StreamType,
    Worker,
    new_id,
)
from vintner.domain.snapshot import build_snapshot, configuration_hash
from vintner.errors import Conflict, InvalidInput, NotFound
from vintner.ports.notifier import Notifier
from vintner.ports.repository import Repository, Transaction

JOB_NOT_FOUND = "Job not found"
NOT_HELD = "Job is not held by this worker"
GENERIC_FAILURE = "The job failed (the worker gave no error message)"
PLAN_STALE = "configuration changed since the plan was generated; plan again"


# -- enqueue (operator) -----------------------------------------------------------------------


@dataclass(frozen=True)
class EnqueueRequest:
    job_type: JobType
    vine_id: uuid.UUID | None = None
    cloud_identity_id: uuid.UUID | None = None
    assigned_worker_id: uuid.UUID | None = None
    plan_job_id: uuid.UUID | None = None
    config_snapshot: JsonObject | None = None
    max_attempts: int = 3


def enqueue(repo: Repository, req: EnqueueRequest, now: datetime,
            notifier: Notifier | None = None) -> Job:
    """Add a QUEUED job; after the commit, ``notifier`` (if given) tells waiting claimers."""
    job = Job(id=new_id(), job_type=req.job_type, max_attempts=req.max_attempts,
              assigned_worker_id=req.assigned_worker_id, created_at=now, updated_at=now)
    with repo.transaction() as tx:
        if req.assigned_worker_id is not None and tx.get_worker(req.assigned_worker_id) is None:
            raise NotFound("Assigned worker not found")
        if req.plan_job_id is not None and req.job_type != JobType.DEPLOY:
            raise InvalidInput("plan_job_id is only valid for DEPLOY jobs",
                               errors={"plan_job_id": ["Only valid for DEPLOY jobs."]})
        if req.job_type.needs_vine:
            _enqueue_vine_job(tx, req, job, now)
        else:
            if req.vine_id is not None:
                raise InvalidInput(f"{req.job_type.value} jobs do not take a vine",
                                   errors={"vine_id": ["Not valid for this job type."]})
            job.cloud_identity_id = req.cloud_identity_id
            if job.cloud_identity_id is not None and (
                tx.get_cloud_identity(job.cloud_identity_id) is None
            ):
                raise NotFound("Cloud identity not found")
            if req.job_type == JobType.CONNECTION_TEST and job.cloud_identity_id is None:
                raise InvalidInput(
                    "CONNECTION_TEST jobs need a cloud_identity_id",
                    errors={"cloud_identity_id": ["Required for CONNECTION_TEST."]},
                )
            job.config_snapshot = dict(req.config_snapshot or {})
            job.configuration_hash = configuration_hash(job.config_snapshot)
            tx.add_job(job)
    if notifier is not None:  # after the commit: a woken reader must find the job
        notifier.notify_job_enqueued()
    return job


def _enqueue_vine_job(tx: Transaction, req: EnqueueRequest, job: Job, now: datetime) -> None:
    if req.vine_id is None:
        raise InvalidInput(f"{req.job_type.value} jobs need a vine_id",
                           errors={"vine_id": ["Required for this job type."]})
    if req.config_snapshot is not None:
        raise InvalidInput(
            f"config_snapshot is built from the vine for {req.job_type.value} jobs",
            errors={"config_snapshot": ["Not accepted for PLAN, DEPLOY or DESTROY jobs."]})
    vine = tx.get_vine(req.vine_id, for_update=True)
    if vine is None:
        raise NotFound("Vine not found")
    if req.cloud_identity_id is not None and req.cloud_identity_id != vine.cloud_identity_id:
        raise InvalidInput("cloud_identity_id must be the vine's cloud identity",
                           errors={"cloud_identity_id": ["Differs from the vine's."]})
    if tx.find_unfinished_vine_job(vine.id) is not None:
        raise Conflict("The vine already has an unfinished PLAN, DEPLOY or DESTROY job")
    identity = tx.get_cloud_identity(vine.cloud_identity_id) if vine.cloud_identity_id else None
    job.vine_id, job.vineyard_id = vine.id, vine.vineyard_id
    job.cloud_identity_id = vine.cloud_identity_id
    job.config_snapshot = build_snapshot(vine, identity.provider.value if identity else None)
    job.configuration_hash = configuration_hash(job.config_snapshot)
    if req.plan_job_id is not None:
        plan = tx.get_job(req.plan_job_id)
        if plan is None or plan.job_type != JobType.PLAN or plan.vine_id != vine.id:
            raise InvalidInput("plan_job_id must name a PLAN job of the same vine",
                               errors={"plan_job_id": ["Not a PLAN job of this vine."]})
        if plan.status != JobStatus.SUCCESS:
            raise Conflict(f"The plan job is {plan.status.value}, not SUCCESS")
        if plan.configuration_hash != job.configuration_hash:
            raise Conflict(PLAN_STALE)
        job.plan_job_id = plan.id
    vine_effects.on_enqueued(vine, job, now)
    tx.add_job(job)
    tx.save_vine(vine)


# -- claim --------------------------------------------------------------------------------------


def claim(repo: Repository, worker: Worker, now: datetime) -> ClaimedJob | None:
    """The next job for ``worker`` (the backend's atomic claim), or None."""
    return repo.claim_next_job(worker.id, now)


# -- a worker's status posts ------------------------------------------------------------------


def _held_job(tx: Transaction, worker: Worker, job_id: uuid.UUID) -> Job:
    job = tx.get_job(job_id)
    if job is None:
        raise NotFound(JOB_NOT_FOUND)
    if job.worker_id != worker.id:
        raise Conflict(NOT_HELD)
    return job


def update_status(
    repo: Repository,
    worker: Worker,
    job_id: uuid.UUID,
    *,
    status: JobStatus,
    error_message: str | None,
    execution_metadata: JsonObject | None,
    now: datetime,
    notifier: Notifier | None = None,
) -> Job:
    """``PUT /api/jobs/{id}/status``: a transition, a metadata post, or an idempotent retry.
    After the commit, ``notifier`` (if given) wakes the job's log followers (they stop on a
    terminal status)."""
    updated = _update_status(repo, worker, job_id, status=status, error_message=error_message,
                             execution_metadata=execution_metadata, now=now)
    if notifier is not None and updated.status != JobStatus.PROCESSING:
        notifier.notify_logs(updated.id)
    return updated


def _update_status(
    repo: Repository,
    worker: Worker,
    job_id: uuid.UUID,
    *,
    status: JobStatus,
    error_message: str | None,
    execution_metadata: JsonObject | None,
    now: datetime,
) -> Job:
    with repo.transaction() as tx:
        job = _held_job(tx, worker, job_id)
        if state_machine.worker_move(job.status, status) is state_machine.Move.IDEMPOTENT_RETRY:
            return job
        vine = tx.get_vine(job.vine_id, for_update=True) if job.vine_id else None
        changes: dict[str, Any] = {"status": status}
        if execution_metadata:
            changes["execution_metadata"] = {**job.execution_metadata, **execution_metadata}
        if error_message is not None:
            changes["error_message"] = error_message
        if status == JobStatus.PROCESSING and job.started_at is None:
            changes["started_at"] = now
        if status.terminal:
            changes["completed_at"] = now
            if status == JobStatus.FAILED and not error_message:
                changes["error_message"] = job.error_message or GENERIC_FAILURE
        updated = tx.update_job(
            job.id, changes, expected_status=job.status, expected_worker_id=worker.id
        )
        if updated is None:
            # another writer (recovery, cancel completion) changed the job since we read it
            current = tx.get_job(job.id)
            if current is None or current.worker_id != worker.id:
                raise Conflict(NOT_HELD)
            raise Conflict(f"Job is {current.status.value}; cannot change it to {status.value}")
        if vine is not None:
            vine_effects.on_status_change(vine, updated, job.status, now)
            tx.save_vine(vine)
        return updated


# -- operator cancel --------------------------------------------------------------------------


def cancel(repo: Repository, job_id: uuid.UUID, now: datetime,
           notifier: Notifier | None = None) -> Job:
    """QUEUED → CANCELLED at once; CLAIMED/PROCESSING → cancel requested; terminal → 409.
    A job cancelled at once wakes its log followers (``notifier``, after the commit)."""
    job = _cancel(repo, job_id, now)
    if notifier is not None and job.status == JobStatus.CANCELLED:
        notifier.notify_logs(job.id)
    return job


def _cancel(repo: Repository, job_id: uuid.UUID, now: datetime) -> Job:
    while True:  # a claim or a status post may win the compare-and-set; then decide again
        with repo.transaction() as tx:
            job = tx.get_job(job_id)
            if job is None:
                raise NotFound(JOB_NOT_FOUND)
            if not state_machine.can_cancel(job.status):
                raise Conflict(f"Job is already {job.status.value}")
            vine = tx.get_vine(job.vine_id, for_update=True) if job.vine_id else None
            changes: dict[str, Any] = {"cancel_requested_at": job.cancel_requested_at or now}
            if job.status == JobStatus.QUEUED:
                changes.update(status=JobStatus.CANCELLED, completed_at=now)
            updated = tx.update_job(
                job.id, changes, expected_status=job.status, expected_worker_id=job.worker_id
            )
            if updated is None:
                continue
            if vine is not None and updated.status == JobStatus.CANCELLED:
                vine_effects.on_status_change(vine, updated, job.status, now)
                tx.save_vine(vine)
            return updated


# -- logs ---------------------------------------------------------------------------------------


def append_log(
    repo: Repository,
    worker: Worker,
    job_id: uuid.UUID,
    *,
    log_chunk: str,
    stream_type: StreamType,
    seq: int | None,
    now: datetime,
    timings: Timings,
    notifier: Notifier | None = None,
) -> tuple[LogChunk, bool, Job]:
    """Store a chunk from the holder; returns (chunk, duplicate, job).

    Accepted while the job is held, and for ``log_tail_grace_s`` after it reached a terminal
    status, so the tail of a log is not lost because the status was sent first. After the
    commit, ``notifier`` (if given) wakes the job's log followers (not for a duplicate, which
    stored nothing); the notifier coalesces bursts.
    """
    chunk, duplicate, job = _append_log(repo, worker, job_id, log_chunk=log_chunk,
                                        stream_type=stream_type, seq=seq, now=now,
                                        timings=timings)
    if notifier is not None and not duplicate:
        notifier.notify_logs(job.id)
    return chunk, duplicate, job


def _append_log(
    repo: Repository,
    worker: Worker,
    job_id: uuid.UUID,
    *,
    log_chunk: str,
    stream_type: StreamType,
    seq: int | None,
    now: datetime,
    timings: Timings,
) -> tuple[LogChunk, bool, Job]:
    with repo.transaction() as tx:
        job = _held_job(tx, worker, job_id)
        if job.status.terminal:
            grace = timedelta(seconds=timings.log_tail_grace_s)
            if job.completed_at is None or now - job.completed_at > grace:
                raise Conflict(f"Job is {job.status.value}; its log is closed")
        elif not job.status.held:
            raise Conflict(NOT_HELD)
        chunk, duplicate = tx.append_log(job.id, log_chunk, stream_type, seq, now)
        return chunk, duplicate, job


# -- read access --------------------------------------------------------------------------------


def visible_job(repo: Repository, job_id: uuid.UUID, worker: Worker | None) -> Job:
    """The job if the caller may read it: an operator (``worker`` None), its holder, or the
    holder of a job whose ``plan_job_id`` is this job. Anyone else gets 404, so a worker cannot
    probe other workers' jobs."""
    with repo.transaction(readonly=True) as tx:
        job = tx.get_job(job_id)
        if job is None:
            raise NotFound(JOB_NOT_FOUND)
        if worker is None or job.worker_id == worker.id:
            return job
        for held in tx.list_held_jobs(worker.id):
            if held.plan_job_id == job.id:
                return job
    raise NotFound(JOB_NOT_FOUND)

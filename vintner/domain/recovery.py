"""Recovery rules and the sweep (operations.md "Liveness and recovery").

Shared by every backend and by every caller (the server's background sweep thread,
``vintner sweep``, worker deletion). Each recovery is a compare-and-set on the job's status and
holder as read, so a worker completing the job at the same moment and the sweep cannot both win;
running several sweeps at once is safe for the same reason.

When the server (not the worker) ends or requeues a job, the holder is cleared: the worker that
lost it gets 409 on every later write ("Job is not held by this worker") and stops.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vintner.domain import vine_effects
from vintner.domain.liveness import Timings, is_stale
from vintner.domain.model import Job, JobStatus, StreamType
from vintner.ports.repository import Repository, Transaction

log = logging.getLogger(__name__)

WORKER_LOST = "worker lost while the job was running; infrastructure may be partly changed"


@dataclass
class SweepReport:
    workers_marked_offline: list[uuid.UUID] = field(default_factory=list)
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)

    def total(self) -> int:
        return len(self.requeued) + len(self.failed) + len(self.cancelled)


def _decide(job: Job, reason: str) -> tuple[JobStatus, str]:
    """What happens to a held job whose holder is gone, and the SYSTEM line that says why."""
    if job.cancel_requested:
        return JobStatus.CANCELLED, f"cancelled: the cancel was requested and {reason}"
    if job.status == JobStatus.CLAIMED or job.job_type.rerunnable:
        if job.attempts < job.max_attempts:
            return JobStatus.QUEUED, (
                f"requeued after attempt {job.attempts} of {job.max_attempts}: {reason}"
            )
        return JobStatus.FAILED, f"gave up after {job.attempts} attempts ({reason})"
    return JobStatus.FAILED, f"{WORKER_LOST} ({reason})"


def end_job_by_server(
    tx: Transaction, job: Job, target: JobStatus, message: str, now: datetime
) -> Job | None:
    """Move a held ``job`` to ``target`` on the server's authority (recovery, timeout).

    Compare-and-set on the status and holder read; returns the updated job, or None when
    another writer got there first. Applies the vine side effects and leaves a SYSTEM log line.
    """
    vine = tx.get_vine(job.vine_id, for_update=True) if job.vine_id else None
    changes: dict[str, object] = {"worker_id": None}
    if target == JobStatus.QUEUED:
        changes.update(status=JobStatus.QUEUED, claimed_at=None, started_at=None)
    else:
        changes.update(status=target, completed_at=now)
        if target == JobStatus.FAILED:
            changes["error_message"] = message
    updated = tx.update_job(
        job.id, changes, expected_status=job.status, expected_worker_id=job.worker_id
    )
    if updated is None:
        return None
    if vine is not None:
        vine_effects.on_status_change(vine, updated, job.status, now)
        tx.save_vine(vine)
    tx.append_log(job.id, f"[vintner] {message}\n", StreamType.SYSTEM, None, now)
    log.info("job %s: %s", job.id, message)
    return updated


def _record(report: SweepReport, job: Job | None) -> None:
    if job is None:
        return
    bucket = {
        JobStatus.QUEUED: report.requeued,
        JobStatus.FAILED: report.failed,
        JobStatus.CANCELLED: report.cancelled,
    }[job.status]
    bucket.append(job.id)


def recover_worker_jobs(
    repo: Repository, worker_id: uuid.UUID, *, now: datetime, reason: str,
    report: SweepReport | None = None,
) -> SweepReport:
    """Recover every job the worker holds (it was deleted, or it is gone for too long)."""
    report = report or SweepReport()
    with repo.transaction() as tx:
        jobs = tx.list_held_jobs(worker_id)
    for job in jobs:
        with repo.transaction() as tx:
            target, message = _decide(job, reason)
            _record(report, end_job_by_server(tx, job, target, message, now))
    return report


def sweep(repo: Repository, timings: Timings, now: datetime) -> SweepReport:
    """One pass of liveness and recovery. Safe to run concurrently from several processes."""
    report = SweepReport()
    with repo.transaction() as tx:
        report.workers_marked_offline = tx.mark_workers_offline(
            now - timedelta(seconds=timings.worker_offline_after_s)
        )
        held = tx.list_held_jobs()
        holders = {
            wid: tx.get_worker(wid, include_deleted=True)
            for wid in {job.worker_id for job in held if job.worker_id}
        }
    for job in held:
        holder = holders.get(job.worker_id) if job.worker_id else None
        holder_gone = holder is None or holder.deleted_at is not None or is_stale(
            holder.last_heartbeat, now, timings.job_recovery_after_s
        )
        with repo.transaction() as tx:
            if holder_gone:
                reason = (
                    "the worker was deleted" if holder is None or holder.deleted_at
                    else f"no heartbeat from the worker for {int(timings.job_recovery_after_s)} s"
                )
                target, message = _decide(job, reason)
                _record(report, end_job_by_server(tx, job, target, message, now))
            elif (
                job.status == JobStatus.PROCESSING
                and job.started_at is not None
                and is_stale(job.started_at, now, timings.job_timeout_s)
            ):
                message = f"timed out after {int(timings.job_timeout_s)} s of processing"
                _record(report, end_job_by_server(tx, job, JobStatus.FAILED, message, now))
    return report

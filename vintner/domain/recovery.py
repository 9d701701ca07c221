"""Recovery rules and the sweep (operations.md "Liveness and recovery").

Shared by every backend and by every caller (the server's background sweep thread,
``vintner sweep``, worker deletion). Each recovery is a compare-and-set on the job's status and
holder as read, so a worker completing the job at the same moment and the sweep cannot both win;
running several sweeps at once is safe for the same reason.

Every job is judged inside the transaction that changes it, from a fresh read of the job and of
its holder (not from the list the sweep started with), so a sweep that read a job seconds ago
does not act on what has changed since: a job completed, re-claimed or cancelled meanwhile.
For vine jobs the vine row is locked first (as every writer of a vine job does), which makes
that fresh read stable until the commit.

When the server (not the worker) ends or requeues a job, the holder is cleared: the worker that
lost it gets 409 on every later write ("Job is not held by this worker") and stops.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vintner.domain import vine_effects
from vintner.domain.liveness import Timings, is_stale
from vintner.domain.model import Job, JobStatus, StreamType, Worker
from vintner.ports.repository import Repository, Transaction

log = logging.getLogger(__name__)

WORKER_LOST = "worker lost while the job was running; infrastructure may be partly changed"
WORKER_DELETED = "the worker was deleted"


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


def assess(
    job: Job, holder: Worker | None, now: datetime, timings: Timings
) -> tuple[JobStatus, str] | None:
    """The recovery rule that applies to a held ``job`` now, as (target, SYSTEM line), or None.

    - holder deleted, or silent for ``job_recovery_after_s``: requeue / give up / fail (below);
    - a cancel was requested and the holder is OFFLINE (``worker_offline_after_s``): CANCELLED;
    - PROCESSING for longer than ``job_timeout_s``: FAILED ("timed out").
    """
    if not job.status.held:
        return None
    if holder is None or holder.deleted_at is not None:
        return _decide(job, WORKER_DELETED)
    if is_stale(holder.last_heartbeat, now, timings.job_recovery_after_s):
        return _decide(
            job, f"no heartbeat from the worker for {int(timings.job_recovery_after_s)} s"
        )
    if job.cancel_requested and is_stale(
        holder.last_heartbeat, now, timings.worker_offline_after_s
    ):
        return _decide(
            job, f"the worker is offline (no heartbeat for {int(timings.worker_offline_after_s)} s)"
        )
    if (
        job.status == JobStatus.PROCESSING
        and job.started_at is not None
        and is_stale(job.started_at, now, timings.job_timeout_s)
    ):
        return JobStatus.FAILED, f"timed out after {int(timings.job_timeout_s)} s of processing"
    return None


def end_job_by_server(
    tx: Transaction, job: Job, target: JobStatus, message: str, now: datetime
) -> Job | None:
    """Move a held ``job`` to ``target`` on the server's authority (recovery, timeout).

    Compare-and-set on the status and holder read; returns the updated job, or None when
    another writer got there first. Applies the vine side effects and leaves a SYSTEM log line.
    The caller locks the job's vine first when it has one (lock order: vine, then job).
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
    if updated.status == JobStatus.QUEUED and updated.cancel_requested:
        # An operator's cancel committed between our read and our write (it only sets
        # cancel_requested_at, so our compare-and-set still matched): a requeued job with a
        # cancel request ends here rather than running again.
        cancelled = tx.update_job(
            job.id, {"status": JobStatus.CANCELLED, "completed_at": now},
            expected_status=JobStatus.QUEUED, expected_worker_id=None,
        )
        assert cancelled is not None  # we hold the row lock from the update above
        updated = cancelled
        message = (
            f"cancelled: the cancel was requested while the job was being recovered ({message})"
        )
    if vine is not None:
        vine_effects.on_status_change(vine, updated, job.status, now)
        tx.save_vine(vine)
    tx.append_log(job.id, f"[vintner] {message}\n", StreamType.SYSTEM, None, now)
    log.info("job %s: %s", job.id, message)
    return updated


def recover_job(
    tx: Transaction, job_id: uuid.UUID, now: datetime, timings: Timings
) -> Job | None:
    """Apply the recovery rule that fits ``job_id`` now, judged from a fresh read inside
    ``tx``; the updated job, or None when no rule applies (or another writer won)."""
    job = tx.get_job(job_id)
    if job is None or not job.status.held:
        return None
    if job.vine_id is not None:
        # Every writer of a vine job locks the vine before the job: with the lock held, the
        # job read below cannot change under us until we commit.
        tx.get_vine(job.vine_id, for_update=True)
        job = tx.get_job(job_id)
        if job is None or not job.status.held:
            return None
    holder = tx.get_worker(job.worker_id, include_deleted=True) if job.worker_id else None
    decision = assess(job, holder, now, timings)
    if decision is None:
        return None
    return end_job_by_server(tx, job, *decision, now)


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
    repo: Repository, worker_id: uuid.UUID, *, now: datetime, reason: str = WORKER_DELETED,
    report: SweepReport | None = None, only: Callable[[Job], bool] | None = None,
) -> SweepReport:
    """Recover the jobs the worker holds (every one, or those ``only`` selects): it was deleted
    (its token is already revoked), or it says it is not running them."""
    report = report or SweepReport()

    def selected(job: Job | None) -> bool:
        return (job is not None and job.status.held and job.worker_id == worker_id
                and (only is None or only(job)))

    with repo.transaction(readonly=True) as tx:  # the writes below re-read each job
        job_ids = [job.id for job in tx.list_held_jobs(worker_id) if selected(job)]
    for job_id in job_ids:
        with repo.transaction() as tx:
            job = tx.get_job(job_id)
            if not selected(job):
                continue
            if job.vine_id is not None:
                tx.get_vine(job.vine_id, for_update=True)
                job = tx.get_job(job_id)
                if not selected(job):
                    continue
            target, message = _decide(job, reason)
            _record(report, end_job_by_server(tx, job, target, message, now))
    return report


def release_unreported_claims(
    repo: Repository, worker_id: uuid.UUID, current_job_id: uuid.UUID | None, *,
    now: datetime, timings: Timings,
) -> SweepReport:
    """Requeue the worker's CLAIMED jobs that its heartbeat says it is not running.

    A live worker can hold a claimed job it never saw: the claim's response was lost, or the
    agent restarted under the same id. Liveness alone would keep such a job forever. When a
    heartbeat reports ``current_job_id`` (null: idle), CLAIMED jobs of that worker other than
    the reported one, claimed longer than ``worker_offline_after_s`` ago (far longer than an
    agent needs to start a job it received), go through the usual recovery rule. PROCESSING
    jobs are never touched here: the worker started them, and its final status may be on its
    way.
    """
    grace = timedelta(seconds=timings.worker_offline_after_s)

    def unreported(job: Job) -> bool:
        return (job.status == JobStatus.CLAIMED and job.id != current_job_id
                and job.claimed_at is not None and now - job.claimed_at > grace)

    return recover_worker_jobs(
        repo, worker_id, now=now, only=unreported,
        reason="the worker reports it is not running the job (a lost claim response, or a "
               "restart)",
    )


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
    # Only jobs that look due get a write transaction; each is judged again there, freshly.
    due = [job.id for job in held
           if assess(job, holders.get(job.worker_id) if job.worker_id else None, now, timings)]
    for job_id in due:
        with repo.transaction() as tx:
            _record(report, recover_job(tx, job_id, now, timings))
    return report

"""Vine side effects of job status changes (domain.md, the table of the same name).

Each function mutates the :class:`Vine` aggregate in place; the caller saves it in the same
transaction as the job change that caused it. Nothing here touches storage.

| job | event | vine |
|---|---|---|
| PLAN / DEPLOY | enqueued | QUEUED |
| DESTROY | enqueued | DESTROYING |
| DEPLOY | PROCESSING | PROVISIONING; components → CREATING (UPDATING if they were ACTIVE) |
| DEPLOY | SUCCESS | finalizeDeployment(), then ACTIVE |
| PLAN | SUCCESS | back to vine_status_before |
| DESTROY | SUCCESS | DESTROYED; every component DESTROYED |
| any | FAILED | FAILED, status_message = the job's error message |
| any | CANCELLED before PROCESSING | back to vine_status_before |
| PLAN | CANCELLED while PROCESSING | back to vine_status_before |
| DEPLOY / DESTROY | CANCELLED while PROCESSING | FAILED, "cancelled mid-run ..." |
"""

from __future__ import annotations

from datetime import datetime

from vintner.domain.finalize import FinalizeError, finalize_deployment
from vintner.domain.model import ComponentStatus, Job, JobStatus, JobType, Vine, VineStatus

CANCELLED_MID_RUN = (
    "{job_type} job {job_id} was cancelled while running; infrastructure may be partly changed"
)


def _set_vine(vine: Vine, status: VineStatus, message: str | None, now: datetime) -> None:
    vine.status = status
    vine.status_message = message
    vine.updated_at = now


def on_enqueued(vine: Vine, job: Job, now: datetime) -> None:
    """Record the vine's status in the job and move the vine to QUEUED / DESTROYING."""
    job.vine_status_before = vine.status
    target = VineStatus.DESTROYING if job.job_type == JobType.DESTROY else VineStatus.QUEUED
    _set_vine(vine, target, None, now)


def _previous(job: Job) -> VineStatus:
    return job.vine_status_before or VineStatus.DRAFT


def on_status_change(vine: Vine, job: Job, previous: JobStatus, now: datetime) -> None:
    """Apply the side effect of ``job`` having just moved from ``previous`` to ``job.status``."""
    new = job.status
    if new == JobStatus.PROCESSING:
        if previous != JobStatus.PROCESSING and job.job_type == JobType.DEPLOY:
            _set_vine(vine, VineStatus.PROVISIONING, None, now)
            for component in vine.components():
                component.status = (
                    ComponentStatus.UPDATING
                    if component.status == ComponentStatus.ACTIVE
                    else ComponentStatus.CREATING
                )
                component.updated_at = now
        return
    if new == JobStatus.SUCCESS:
        if job.job_type == JobType.DEPLOY:
            try:
                finalize_deployment(vine, job.execution_metadata, now)
            except FinalizeError as exc:
                _set_vine(vine, VineStatus.FAILED, f"finalizeDeployment failed: {exc}", now)
        elif job.job_type == JobType.DESTROY:
            _set_vine(vine, VineStatus.DESTROYED, None, now)
            for component in [*vine.components(), *([vine.network] if vine.network else [])]:
                component.status = ComponentStatus.DESTROYED
                component.updated_at = now
        else:
            _set_vine(vine, _previous(job), vine.status_message, now)
        return
    if new == JobStatus.FAILED:
        _set_vine(vine, VineStatus.FAILED, job.error_message, now)
        return
    if new == JobStatus.CANCELLED:
        mid_run = previous == JobStatus.PROCESSING
        if mid_run and job.job_type in (JobType.DEPLOY, JobType.DESTROY):
            message = CANCELLED_MID_RUN.format(job_type=job.job_type.value, job_id=job.id)
            _set_vine(vine, VineStatus.FAILED, message, now)
        else:
            _set_vine(vine, _previous(job), vine.status_message, now)
        return
    if new == JobStatus.QUEUED:
        # requeued by recovery: the vine waits for the next attempt
        _set_vine(vine, VineStatus.DESTROYING if job.job_type == JobType.DESTROY
                  else VineStatus.QUEUED, None, now)

"""``vintner jobs …``: enqueue, list, show, cancel, logs."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import click

from vintner.api import serializers
from vintner.cli.context import (
    CliError,
    echo_fields,
    echo_json,
    echo_listing,
    json_option,
    services,
)
from vintner.domain import jobs
from vintner.domain.model import Job, JobStatus, JobType, utcnow
from vintner.ports.notifier import logs_channel
from vintner.ports.repository import JobFilter, Page

LOG_PAGE = 1000


@click.group("jobs")
def jobs_group() -> None:
    """The job queue: enqueue, list, show, cancel, read logs."""


def _echo_job(job: Job, as_json: bool) -> None:
    if as_json:
        echo_json(serializers.job(job))
        return
    echo_fields([
        ("id", job.id), ("type", job.job_type.value), ("status", job.status.value),
        ("vine", job.vine_id), ("vineyard", job.vineyard_id),
        ("cloud identity", job.cloud_identity_id), ("plan job", job.plan_job_id),
        ("worker", job.worker_id), ("assigned worker", job.assigned_worker_id),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("cancel requested", "yes" if job.cancel_requested else "no"),
        ("configuration hash", job.configuration_hash),
        ("created", serializers.ts(job.created_at)), ("claimed", serializers.ts(job.claimed_at)),
        ("started", serializers.ts(job.started_at)),
        ("completed", serializers.ts(job.completed_at)),
        ("error", job.error_message),
        ("metadata", json.dumps(job.execution_metadata) if job.execution_metadata else None),
    ])


@jobs_group.command("enqueue")
@click.argument("job_type", metavar="TYPE",
                type=click.Choice([t.value for t in JobType], case_sensitive=False))
@click.option("--vine", "vine_id", type=click.UUID, help="Required for PLAN, DEPLOY, DESTROY.")
@click.option("--plan-job", "plan_job_id", type=click.UUID,
              help="DEPLOY: apply this (SUCCESS) PLAN job's plan.")
@click.option("--assigned-worker", "assigned_worker_id", type=click.UUID,
              help="Only this worker may claim the job.")
@click.option("--cloud-identity", "cloud_identity_id", type=click.UUID,
              help="For jobs without a vine (e.g. CONNECTION_TEST).")
@click.option("--config-snapshot", "snapshot_file", type=click.File("r"),
              help="For jobs without a vine: a JSON object file (vine jobs snapshot the vine).")
@json_option
def enqueue_command(job_type: str, vine_id: uuid.UUID | None, plan_job_id: uuid.UUID | None,
                    assigned_worker_id: uuid.UUID | None, cloud_identity_id: uuid.UUID | None,
                    snapshot_file: Any, as_json: bool) -> None:
    """Enqueue a job of TYPE (PLAN, DEPLOY, DESTROY, CONNECTION_TEST, ...)."""
    snapshot = None
    if snapshot_file is not None:
        try:
            snapshot = json.load(snapshot_file)
        except json.JSONDecodeError as exc:
            raise CliError(f"--config-snapshot is not valid JSON: {exc}") from None
        if not isinstance(snapshot, dict):
            raise CliError("--config-snapshot must hold a JSON object")
    svc = services()
    job = jobs.enqueue(svc.repository, jobs.EnqueueRequest(
        job_type=JobType(job_type.upper()), vine_id=vine_id, cloud_identity_id=cloud_identity_id,
        assigned_worker_id=assigned_worker_id, plan_job_id=plan_job_id,
        config_snapshot=snapshot,
    ), utcnow(), svc.notifier)
    if as_json:
        echo_json(serializers.job(job))
    else:
        click.echo(f"Enqueued {job.job_type.value} job {job.id} ({job.status.value})")


@jobs_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in JobStatus], case_sensitive=False))
@click.option("--type", "job_type",
              type=click.Choice([t.value for t in JobType], case_sensitive=False))
@click.option("--vine", "vine_id", type=click.UUID)
@click.option("--vineyard", "vineyard_id", type=click.UUID)
@click.option("--worker", "worker_id", type=click.UUID, help="Jobs held by this worker.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@json_option
def list_command(status: str | None, job_type: str | None, vine_id: uuid.UUID | None,
                 vineyard_id: uuid.UUID | None, worker_id: uuid.UUID | None, limit: int,
                 offset: int, as_json: bool) -> None:
    """Jobs, newest first."""
    flt = JobFilter(status=JobStatus(status.upper()) if status else None,
                    job_type=JobType(job_type.upper()) if job_type else None,
                    vine_id=vine_id, vineyard_id=vineyard_id, worker_id=worker_id)
    with services().repository.transaction(readonly=True) as tx:
        items, total = tx.list_jobs(flt, Page(limit=limit, offset=offset))
    rows = [serializers.job(j) for j in items]
    echo_listing("jobs", rows, total, limit, offset, as_json=as_json,
                 columns=[("id", "ID"), ("job_type", "TYPE"), ("status", "STATUS"),
                           ("vine_id", "VINE"), ("worker_id", "WORKER"), ("created_at", "CREATED")],
                 empty="No jobs.")


@jobs_group.command("show")
@click.argument("job_id", type=click.UUID)
@json_option
def show_command(job_id: uuid.UUID, as_json: bool) -> None:
    """One job."""
    _echo_job(jobs.visible_job(services().repository, job_id, None), as_json)


@jobs_group.command("cancel")
@click.argument("job_id", type=click.UUID)
@json_option
def cancel_command(job_id: uuid.UUID, as_json: bool) -> None:
    """Cancel a job: QUEUED at once; CLAIMED/PROCESSING asks the worker to stop."""
    svc = services()
    job = jobs.cancel(svc.repository, job_id, utcnow(), svc.notifier)
    if as_json:
        echo_json({"success": True, "job": serializers.job(job)})
    elif job.status == JobStatus.CANCELLED:
        click.echo(f"Cancelled job {job.id}.")
    else:
        click.echo(f"Cancel requested for job {job.id} ({job.status.value}); its worker stops "
                   "it and reports CANCELLED.")


@jobs_group.command("logs")
@click.argument("job_id", type=click.UUID)
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new chunks until the job has ended and its log is complete.")
@click.option("--after", type=click.IntRange(min=0), default=0,
              help="Only chunks with a larger log id.")
@click.option("--poll-interval", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="With --follow: the longest wait between reads. New chunks wake the "
                   "follower at once on PostgreSQL (LISTEN/NOTIFY); SQLite is polled.")
@click.option("--tail-wait", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="With --follow: after the job ended, stop once no chunk came for this long.")
@json_option
def logs_command(job_id: uuid.UUID, follow: bool, after: int, poll_interval: float,
                 tail_wait: float, as_json: bool) -> None:
    """Print a job's log chunks in order (--json: one JSON object per chunk).

    With --follow, keep reading until the job is terminal and its tail has arrived: the agent
    may send the last chunks after the final status (they are accepted for the log tail grace
    period), so following stops when no chunk came for --tail-wait seconds after the job ended,
    or when that grace period is over. Between reads the follower waits on the job's log
    channel of the repository's notifier (woken by appends and status changes in any server
    process on PostgreSQL; SQLite's notifier polls), at most --poll-interval seconds.
    """
    svc = services()
    repo = svc.repository
    grace = timedelta(seconds=svc.timings.log_tail_grace_s)
    quiet_since: float | None = None
    notifier = svc.notifier if follow else None
    channel = logs_channel(job_id)
    # the position is taken before each read: a wake-up between the read and the wait is kept
    position = notifier.position(channel) if notifier is not None else 0
    while True:
        # the job's status is read before the chunks are fetched: a chunk accepted before that
        # moment is in the fetch, so "ended, and its grace period over" means nothing is missing
        job = jobs.visible_job(repo, job_id, None)
        checked_at = utcnow()
        got = 0
        while True:
            with repo.transaction(readonly=True) as tx:
                chunks = tx.list_logs(job_id, after, LOG_PAGE)
            for chunk in chunks:
                if as_json:
                    click.echo(json.dumps(serializers.log_chunk(chunk), ensure_ascii=False))
                else:
                    click.echo(chunk.log_chunk, nl=False)
                after = chunk.id
            got += len(chunks)
            if len(chunks) < LOG_PAGE:
                break
        if notifier is None:  # not following
            return
        if job.status.terminal:
            if job.completed_at is None or checked_at - job.completed_at >= grace:
                return
            now = time.monotonic()
            if got or quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= tail_wait:
                return
            timeout = min(poll_interval, max(tail_wait - (now - quiet_since), 0.01))
        else:
            timeout = poll_interval
        position = notifier.wait(channel, timeout, after=position)

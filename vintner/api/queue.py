"""Operator API: the job queue (enqueue, list, cancel). Workers' job routes are in jobs.py."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue

from vintner.api import serializers
from vintner.api.auth import operator_required
from vintner.api.blueprint import Blueprint
from vintner.api.ids import parse_id
from vintner.api.operator_common import OPERATOR_SECURITY
from vintner.api.operator_schemas import EnqueueJobSchema, JobListQuerySchema
from vintner.domain import jobs
from vintner.domain.model import JobStatus, JobType, utcnow
from vintner.ports.repository import JobFilter, Page
from vintner.services import services

blp = Blueprint("queue", __name__, url_prefix="/api/jobs",
                description="The job queue: enqueue, list and cancel jobs (operator).")


@blp.route("", methods=["POST"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
@blp.arguments(EnqueueJobSchema)
def enqueue_job(body: dict[str, Any]) -> ResponseReturnValue:
    """Enqueue a job. PLAN/DEPLOY/DESTROY need ``vine_id``; their snapshot is built from the
    vine. A DEPLOY with ``plan_job_id`` is refused (409) when the vine changed since the plan."""
    svc = services()
    job = jobs.enqueue(
        svc.repository,
        jobs.EnqueueRequest(
            job_type=JobType(body["job_type"]), vine_id=body["vine_id"],
            cloud_identity_id=body["cloud_identity_id"],
            assigned_worker_id=body["assigned_worker_id"], plan_job_id=body["plan_job_id"],
            config_snapshot=body["config_snapshot"],
        ),
        utcnow(),
        svc.notifier,
    )
    return serializers.job(job), 201


@blp.route("", methods=["GET"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
@blp.arguments(JobListQuerySchema, location="query")
def list_jobs(query: dict[str, Any]) -> ResponseReturnValue:
    """Jobs, newest first, filtered by ``status``, ``vine_id``, ``vineyard_id``, ``job_type``
    and ``worker_id``."""
    flt = JobFilter(
        status=JobStatus(query["status"]) if query["status"] else None,
        job_type=JobType(query["job_type"]) if query["job_type"] else None,
        vine_id=query["vine_id"], vineyard_id=query["vineyard_id"], worker_id=query["worker_id"],
    )
    page = Page(limit=query["limit"], offset=query["offset"])
    with services().repository.transaction(readonly=True) as tx:
        items, total = tx.list_jobs(flt, page)
    return serializers.listing("jobs", [serializers.job(j) for j in items], total, page.limit,
                               page.offset)


@blp.route("/<job_id>/cancel", methods=["POST"])
@blp.doc(security=OPERATOR_SECURITY)
@operator_required
def cancel_job(job_id: str) -> ResponseReturnValue:
    """QUEUED → CANCELLED at once; CLAIMED/PROCESSING → cancel requested (the holder learns it
    from its heartbeat and posts CANCELLED); a terminal job → 409."""
    svc = services()
    job = jobs.cancel(svc.repository, parse_id(job_id, "Job"), utcnow(), svc.notifier)
    return {"success": True, "job": serializers.job(job)}

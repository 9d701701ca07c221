"""Worker job endpoints: claim, status, read."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue

from vintner.api import serializers
from vintner.api.auth import current_worker, worker_or_operator, worker_required
from vintner.api.blueprint import Blueprint
from vintner.api.ids import parse_id
from vintner.api.schemas import JobStatusSchema
from vintner.domain import jobs, state_machine
from vintner.domain.model import Job, utcnow
from vintner.domain.workers import encoded_size
from vintner.errors import TooLarge
from vintner.services import services

blp = Blueprint("jobs", __name__, url_prefix="/api/jobs",
                description="Claiming, status and reading jobs")

WORKER_AUTH = [{"worker_id": [], "worker_token": []}]
MAX_EXECUTION_METADATA = 1024 * 1024
MAX_ERROR_MESSAGE = 64 * 1024
CANCEL_HEADER = "X-Vintner-Cancel-Requested"


def cancel_header(job: Job) -> dict[str, str]:
    """The header that tells the holder an operator asked to cancel (log/status responses)."""
    return {CANCEL_HEADER: "true"} if job.cancel_requested else {}


@blp.route("/claim", methods=["POST"])
@worker_required
@blp.doc(security=WORKER_AUTH)
def claim() -> ResponseReturnValue:
    """Atomically claim the next job for this worker; 204 when there is none."""
    claimed = jobs.claim(services().repository, current_worker(), utcnow())
    if claimed is None:
        return "", 204
    return {"job": serializers.job(claimed.job),
            "cloud_identity": serializers.claim_identity(claimed.cloud_identity)}


@blp.route("/<job_id>/status", methods=["PUT"])
@worker_required
@blp.arguments(JobStatusSchema)
@blp.doc(security=WORKER_AUTH)
def put_status(body: dict[str, Any], job_id: str) -> ResponseReturnValue:
    """Report PROCESSING (repeatedly, to stream metadata) or a terminal status."""
    job_uuid = parse_id(job_id, "Job")
    status = state_machine.parse_worker_status(body["status"])
    error_message = body["error_message"]
    if error_message is not None and len(error_message.encode()) > MAX_ERROR_MESSAGE:
        raise TooLarge("error_message exceeds 64 KiB")
    metadata = body["execution_metadata"]
    if metadata is not None and encoded_size(metadata) > MAX_EXECUTION_METADATA:
        raise TooLarge("execution_metadata exceeds 1 MiB when encoded")
    svc = services()
    job = jobs.update_status(
        svc.repository, current_worker(), job_uuid, status=status,
        error_message=error_message, execution_metadata=metadata, now=utcnow(),
        notifier=svc.notifier,
    )
    return {"success": True, "job": serializers.job(job)}, 200, cancel_header(job)


@blp.route("/<job_id>", methods=["GET"])
@worker_or_operator
@blp.doc(security=[{"operator": []}, *WORKER_AUTH])
def get_job(job_id: str) -> ResponseReturnValue:
    """The bare job object: for its holder, the holder of a DEPLOY applying it, operators."""
    job = jobs.visible_job(services().repository, parse_id(job_id, "Job"), current_worker())
    return serializers.job(job)

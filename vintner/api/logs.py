"""Log endpoints: append a chunk (the holder), read pages (holder or operator)."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue

from vintner.api import serializers
from vintner.api.auth import current_worker, worker_or_operator, worker_required
from vintner.api.blueprint import Blueprint
from vintner.api.ids import parse_id
from vintner.api.jobs import cancel_header
from vintner.api.schemas import LogChunkSchema, LogQuerySchema
from vintner.domain import jobs
from vintner.domain.model import StreamType, utcnow
from vintner.errors import TooLarge
from vintner.services import services

blp = Blueprint("logs", __name__, url_prefix="/api/jobs", description="Job logs")

MAX_LOG_CHUNK_BYTES = 1024 * 1024


@blp.route("/<job_id>/logs", methods=["POST"])
@worker_required
@blp.arguments(LogChunkSchema)
@blp.doc(security=[{"worker_id": [], "worker_token": []}])
def append_log(body: dict[str, Any], job_id: str) -> ResponseReturnValue:
    """Append a chunk; a repeated ``seq`` stores nothing and returns the first chunk's id."""
    job_uuid = parse_id(job_id, "Job")
    if len(body["log_chunk"].encode("utf-8")) > MAX_LOG_CHUNK_BYTES:
        raise TooLarge("log_chunk exceeds 1 MiB")
    svc = services()
    chunk, duplicate, job = jobs.append_log(
        svc.repository, current_worker(), job_uuid, log_chunk=body["log_chunk"],
        stream_type=StreamType(body["stream_type"]), seq=body["seq"], now=utcnow(),
        timings=svc.timings, notifier=svc.notifier,
    )
    if duplicate:
        return {"success": True, "id": chunk.id, "duplicate": True}, 200, cancel_header(job)
    return {"success": True, "id": chunk.id}, 201, cancel_header(job)


@blp.route("/<job_id>/logs", methods=["GET"])
@worker_or_operator
@blp.arguments(LogQuerySchema, location="query")
@blp.doc(security=[{"operator": []}, {"worker_id": [], "worker_token": []}])
def read_logs(query: dict[str, Any], job_id: str) -> ResponseReturnValue:
    """Chunks with id > ``after`` in id order; concatenating pages reproduces the log."""
    repo = services().repository
    job = jobs.visible_job(repo, parse_id(job_id, "Job"), current_worker())
    after, limit = query["after"], query["limit"]
    with repo.transaction(readonly=True) as tx:
        chunks = tx.list_logs(job.id, after, limit + 1)
    has_more = len(chunks) > limit
    chunks = chunks[:limit]
    return {
        "logs": [serializers.log_chunk(c) for c in chunks],
        "next_after": chunks[-1].id if chunks else after,
        "has_more": has_more,
    }

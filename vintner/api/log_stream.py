"""Real-time logs: ``GET /api/jobs/{id}/logs/stream`` as Server-Sent Events (operations.md).

Each log chunk is one event whose ``id:`` is the log id and whose data is the chunk object (as
in ``GET /api/jobs/{id}/logs``). A reconnect with ``Last-Event-ID`` (or ``?after=``) resumes
after that id, so nothing is missed or repeated. When the job is terminal and its log has been
read to the end, a final ``event: status`` carries the job's status and the stream ends.

The stream wakes on the repository's notifier (PostgreSQL ``LISTEN/NOTIFY`` across server
processes; polling on SQLite) and re-reads the database each time: the database stays the
source of truth. A comment line every ``KEEPALIVE_S`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Response, request
from flask.typing import ResponseReturnValue

from vintner.api import serializers
from vintner.api.auth import current_worker, worker_or_operator
from vintner.api.blueprint import Blueprint
from vintner.api.ids import parse_id
from vintner.api.schemas import LogStreamQuerySchema
from vintner.domain import jobs
from vintner.ports.notifier import logs_channel
from vintner.services import Services, services

blp = Blueprint("log_stream", __name__, url_prefix="/api/jobs",
                description="Job logs as Server-Sent Events")

KEEPALIVE_S = 15.0
PAGE = 500


def _event(data: Any, *, event: str | None = None, event_id: int | None = None) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def _resume_after(query_after: int) -> int:
    """``Last-Event-ID`` (a reconnecting EventSource) wins over ``?after=``."""
    header = request.headers.get("Last-Event-ID", "").strip()
    if header.isdigit() and len(header) < 19:
        return int(header)
    return query_after


def stream_events(svc: Services, job_id: uuid.UUID, after: int) -> Iterator[str]:
    """The event stream of one job's log, from ``after`` until the job's end."""
    notifier = svc.notifier
    channel = logs_channel(job_id)
    position = notifier.position(channel)
    yield "retry: 2000\n\n"
    while True:
        with svc.repository.transaction(readonly=True) as tx:
            job = tx.get_job(job_id)
            chunks = tx.list_logs(job_id, after, PAGE)
        for chunk in chunks:
            after = chunk.id
            yield _event(serializers.log_chunk(chunk), event_id=chunk.id)
        if len(chunks) == PAGE:
            continue  # more to read before waiting
        if job is None or job.status.terminal:
            # read after the status was seen, so every chunk stored before the end is sent
            status = job.status.value if job else "DELETED"
            yield _event({"job_id": str(job_id), "status": status,
                          "error_message": job.error_message if job else None},
                         event="status")
            return
        new_position = notifier.wait(channel, KEEPALIVE_S, after=position)
        if new_position == position:
            yield ": keep-alive\n\n"
        position = new_position


@blp.route("/<job_id>/logs/stream", methods=["GET"])
@worker_or_operator
@blp.arguments(LogStreamQuerySchema, location="query")
@blp.doc(security=[{"operator": []}, {"worker_id": [], "worker_token": []}])
def stream_logs(query: dict[str, Any], job_id: str) -> ResponseReturnValue:
    """Log chunks as Server-Sent Events (``id:`` = log id), then a final ``event: status``."""
    svc = services()
    job = jobs.visible_job(svc.repository, parse_id(job_id, "Job"), current_worker())
    events = stream_events(svc, job.id, _resume_after(query["after"]))
    return Response(events, mimetype="text/event-stream", headers={
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    })

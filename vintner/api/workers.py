"""Worker endpoints: registration (operator), heartbeat, metadata, token lifecycle."""

from __future__ import annotations

import uuid
from typing import Any

from flask.typing import ResponseReturnValue

from vintner.api import serializers
from vintner.api.auth import (
    current_worker,
    operator_required,
    worker_or_operator,
    worker_required,
)
from vintner.api.blueprint import Blueprint, json_object_body
from vintner.api.ids import parse_id
from vintner.api.schemas import HeartbeatSchema, PageQuerySchema, RegisterWorkerSchema
from vintner.domain import workers
from vintner.domain.model import Worker, WorkerMode, WorkerStatus, utcnow
from vintner.errors import NotFound
from vintner.ports.repository import Page
from vintner.services import services

blp = Blueprint("workers", __name__, url_prefix="/api/workers",
                description="Tendril registration, heartbeat and metadata")

OPERATOR = [{"operator": []}]
WORKER = [{"worker_id": [], "worker_token": []}]


def _worker_json(worker: Worker) -> dict[str, Any]:
    return serializers.worker(worker, utcnow(), services().timings)


def _target(raw_id: str) -> uuid.UUID:
    """The worker id in the path, for the worker itself or an operator; other workers' ids look
    like unknown ones (404)."""
    worker_id = parse_id(raw_id, "Worker")
    me = current_worker()
    if me is not None and me.id != worker_id:
        raise NotFound("Worker not found")
    return worker_id


@blp.route("/register", methods=["POST"])
@operator_required
@blp.arguments(RegisterWorkerSchema)
@blp.doc(security=OPERATOR)
def register(body: dict[str, Any]) -> ResponseReturnValue:
    """Register a Tendril; the plaintext token is returned this once."""
    reg = workers.register(
        services().repository, name=body["name"], mode=WorkerMode(body["mode"]),
        cloud_identity_id=body["cloud_identity_id"], metadata=body["metadata"], now=utcnow(),
    )
    return {"worker_id": str(reg.worker.id), "worker_token": reg.token,
            "worker": _worker_json(reg.worker)}, 201


@blp.route("/heartbeat", methods=["POST"])
@worker_required
@blp.arguments(HeartbeatSchema)
@blp.doc(security=WORKER)
def heartbeat(body: dict[str, Any]) -> ResponseReturnValue:
    """Record a heartbeat; learn the server's timings and the jobs to cancel."""
    svc = services()
    now = utcnow()
    status = WorkerStatus(body["status"]) if body["status"] else None
    worker, cancel_ids = workers.heartbeat(
        svc.repository, current_worker().id, version=body["version"], status=status, now=now,
        timings=svc.timings, reports_current_job="current_job_id" in body,
        current_job_id=body.get("current_job_id"),
    )
    return {
        "success": True,
        "status": worker.status.value,
        "server_time": now.isoformat(),
        "heartbeat_interval_s": int(svc.timings.heartbeat_interval_s),
        "offline_after_s": int(svc.timings.worker_offline_after_s),
        "cancel_requested": [str(job_id) for job_id in cancel_ids],
    }


@blp.route("", methods=["GET"])
@operator_required
@blp.arguments(PageQuerySchema, location="query")
@blp.doc(security=OPERATOR)
def list_workers(query: dict[str, Any]) -> ResponseReturnValue:
    """List workers (status computed from the server's clock)."""
    page = Page(limit=query["limit"], offset=query["offset"])
    with services().repository.transaction(readonly=True) as tx:
        items, total = tx.list_workers(page)
    return serializers.listing("workers", [_worker_json(w) for w in items], total,
                               page.limit, page.offset)


@blp.route("/<worker_id>", methods=["GET"])
@worker_or_operator
@blp.doc(security=[*OPERATOR, *WORKER])
def get_worker(worker_id: str) -> ResponseReturnValue:
    """The worker object (the worker itself or an operator)."""
    return _worker_json(workers.get_worker(services().repository, _target(worker_id)))


@blp.route("/<worker_id>", methods=["DELETE"])
@worker_or_operator
@blp.doc(security=[*OPERATOR, *WORKER])
def delete_worker(worker_id: str) -> ResponseReturnValue:
    """Revoke the worker's token at once; its jobs are recovered as if it went offline."""
    workers.revoke(services().repository, _target(worker_id), now=utcnow())
    return "", 204


@blp.route("/<worker_id>/metadata", methods=["POST", "PATCH"])
@worker_or_operator
@blp.doc(security=[*OPERATOR, *WORKER])
def merge_metadata(worker_id: str) -> ResponseReturnValue:
    """Merge a JSON object shallowly into the worker's metadata; null values remove keys."""
    target = _target(worker_id)
    worker = workers.merge_metadata(services().repository, target, json_object_body())
    return {"success": True, "worker": _worker_json(worker)}


@blp.route("/<worker_id>/rotate-token", methods=["POST"])
@operator_required
@blp.doc(security=OPERATOR)
def rotate_token(worker_id: str) -> ResponseReturnValue:
    """A new token for the worker; the old one stops working on its next request."""
    reg = workers.rotate_token(services().repository, parse_id(worker_id, "Worker"))
    return {"worker_id": str(reg.worker.id), "worker_token": reg.token,
            "worker": _worker_json(reg.worker)}

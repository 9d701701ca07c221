"""The claim on SQLite: ``UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING`` statements.

It runs inside the caller's ``BEGIN IMMEDIATE`` transaction, so SQLite's single writer lock makes
the read of the next job and its update one atomic step: two claimers can never see the same
QUEUED row, and a claimer waiting for the lock waits (busy_timeout) rather than failing.

Two passes, like PostgreSQL's function: jobs pre-assigned to this worker first, then unassigned
ones (of the worker's cloud identity when it is bound to one). Each pass is "oldest first" on its
own, so SQLite walks the partial indexes on queued jobs in order instead of sorting every queued
row. The statements are built once, at import, with bound parameters: building SQLAlchemy
expressions per call cost more than running them.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, RowMapping, Uuid, bindparam, case, select, update

from backends.sql.models import jobs, workers
from backends.sql.types import UTCDateTime

_w, _j = workers.c, jobs.c
_WORKER = bindparam("worker_id", type_=Uuid())
_NOW = bindparam("now", type_=UTCDateTime())
_IDENTITY = bindparam("identity_id", type_=Uuid())

#: Count the claim as a heartbeat: an OFFLINE worker that claims is alive again; DRAINING stays.
_HEARTBEAT = (
    update(workers)
    .where(_w.id == _WORKER, _w.deleted_at.is_(None))
    .values(last_heartbeat=_NOW,
            status=case((_w.status == "OFFLINE", "ONLINE"), else_=_w.status))
    .returning(_w.status, _w.cloud_identity_id)
)


def _claim_pass(*candidates: object) -> object:
    next_id = (
        select(_j.id)
        .where(_j.status == "QUEUED", *candidates)
        .order_by(_j.created_at, _j.id)
        .limit(1)
        .scalar_subquery()
    )
    return (
        update(jobs)
        .where(_j.id == next_id, _j.status == "QUEUED")
        .values(status="CLAIMED", worker_id=_WORKER, claimed_at=_NOW,
                attempts=_j.attempts + 1, updated_at=_NOW)
        .returning(*jobs.c)
    )


_ASSIGNED = _claim_pass(_j.assigned_worker_id == _WORKER)
_UNASSIGNED = _claim_pass(_j.assigned_worker_id.is_(None))
_UNASSIGNED_OF_IDENTITY = _claim_pass(_j.assigned_worker_id.is_(None),
                                      _j.cloud_identity_id == _IDENTITY)


def heartbeat_for_claim(
    conn: Connection, worker_id: uuid.UUID, now: datetime
) -> tuple[str, uuid.UUID | None] | None:
    """Count the claim as a heartbeat. Returns (status, cloud_identity_id) of the worker, or
    None for an unknown or deleted worker (which is left untouched)."""
    row = conn.execute(_HEARTBEAT, {"worker_id": worker_id, "now": now}).first()
    if row is None:
        return None
    return row[0], row[1]


def claim_next_job(conn: Connection, worker_id: uuid.UUID, now: datetime) -> RowMapping | None:
    """Claim the next job for ``worker_id`` (worker-api.md "Claiming a job"); the job row or
    None. Must run inside a ``BEGIN IMMEDIATE`` transaction."""
    worker = heartbeat_for_claim(conn, worker_id, now)
    if worker is None or worker[0] == "DRAINING":
        return None
    identity_id = worker[1]
    params = {"worker_id": worker_id, "now": now, "identity_id": identity_id}
    unassigned = _UNASSIGNED if identity_id is None else _UNASSIGNED_OF_IDENTITY
    for statement in (_ASSIGNED, unassigned):
        row = conn.execute(statement, params).mappings().first()
        if row is not None:
            return row
    return None

"""The claim on SQLite: ``UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING`` statements.

It runs inside the caller's ``BEGIN IMMEDIATE`` transaction, so SQLite's single writer lock makes
the read of the next job and its update one atomic step: two claimers can never see the same
QUEUED row, and a claimer waiting for the lock waits (busy_timeout) rather than failing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, RowMapping, and_, case, select, true, update

from backends.sql.models import jobs, workers


def heartbeat_for_claim(
    conn: Connection, worker_id: uuid.UUID, now: datetime
) -> tuple[str, uuid.UUID | None] | None:
    """Count the claim as a heartbeat. Returns (status, cloud_identity_id) of the worker, or
    None for an unknown or deleted worker (which is left untouched)."""
    w = workers.c
    row = conn.execute(
        update(workers)
        .where(w.id == worker_id, w.deleted_at.is_(None))
        .values(
            last_heartbeat=now,
            # An OFFLINE worker that claims is alive again; DRAINING stays DRAINING.
            status=case((w.status == "OFFLINE", "ONLINE"), else_=w.status),
        )
        .returning(w.status, w.cloud_identity_id)
    ).first()
    if row is None:
        return None
    return row[0], row[1]


def claim_next_job(conn: Connection, worker_id: uuid.UUID, now: datetime) -> RowMapping | None:
    """Claim the next job for ``worker_id`` (worker-api.md "Claiming a job"); the job row or
    None. Must run inside a ``BEGIN IMMEDIATE`` transaction."""
    worker = heartbeat_for_claim(conn, worker_id, now)
    if worker is None or worker[0] == "DRAINING":
        return None
    cloud_identity_id = worker[1]

    j = jobs.c
    identity_matches = (
        j.cloud_identity_id == cloud_identity_id if cloud_identity_id is not None else true()
    )
    # Two passes, like PostgreSQL's function: jobs pre-assigned to this worker first, then
    # unassigned ones. Each pass is "oldest first" on its own, so SQLite walks the partial
    # indexes on queued jobs in order instead of sorting every queued row for each claim.
    for candidates in (
        j.assigned_worker_id == worker_id,
        and_(j.assigned_worker_id.is_(None), identity_matches),
    ):
        next_id = (
            select(j.id)
            .where(j.status == "QUEUED", candidates)
            .order_by(j.created_at, j.id)
            .limit(1)
            .scalar_subquery()
        )
        row = (
            conn.execute(
                update(jobs)
                .where(j.id == next_id, j.status == "QUEUED")
                .values(
                    status="CLAIMED",
                    worker_id=worker_id,
                    claimed_at=now,
                    attempts=j.attempts + 1,
                    updated_at=now,
                )
                .returning(*jobs.c)
            )
            .mappings()
            .first()
        )
        if row is not None:
            return row
    return None

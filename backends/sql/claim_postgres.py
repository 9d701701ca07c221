"""The claim on PostgreSQL: a call of the ``claim_next_job()`` SQL function.

The function itself is created by the initial Alembic revision (``alembic/versions``); read it
there. In short: it records the heartbeat (a DRAINING, deleted or unknown worker then gets
nothing), then claims with a CTE that selects the next row ``FOR NO KEY UPDATE SKIP LOCKED``
and an ``UPDATE … FROM cte RETURNING jobs.*`` — first among the jobs pre-assigned to the worker,
then among the unassigned ones matching the worker's cloud identity (when bound), oldest first.

``FOR NO KEY UPDATE`` rather than ``FOR UPDATE``: inserting a child row (a log chunk, a plan
artifact) takes ``FOR KEY SHARE`` on the referenced job, which conflicts with ``FOR UPDATE`` but
not with ``FOR NO KEY UPDATE``; with ``SKIP LOCKED`` the stronger lock would silently skip a
queued job merely because some transaction referenced it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, RowMapping, Uuid, bindparam, text

from backends.sql.models import jobs
from backends.sql.types import UTCDateTime

_CLAIM = (
    text("SELECT * FROM claim_next_job(:worker_id, :now)")
    .bindparams(bindparam("worker_id", type_=Uuid()), bindparam("now", type_=UTCDateTime()))
    .columns(*jobs.c)
)


def claim_next_job(conn: Connection, worker_id: uuid.UUID, now: datetime) -> RowMapping | None:
    """Claim the next job for ``worker_id``; the job row or None. One statement; the caller
    commits (and retries the transaction on a serialization failure or deadlock)."""
    return conn.execute(_CLAIM, {"worker_id": worker_id, "now": now}).mappings().first()

"""Worker liveness from the server's clock (operations.md "Liveness and recovery")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from vintner.domain.model import Worker, WorkerStatus


@dataclass(frozen=True)
class Timings:
    """The timing settings every liveness and recovery decision uses (seconds)."""

    heartbeat_interval_s: float = 30
    worker_offline_after_s: float = 60
    job_recovery_after_s: float = 300
    job_timeout_s: float = 7200
    log_tail_grace_s: float = 300


def is_stale(last_seen: datetime | None, now: datetime, after_s: float) -> bool:
    """True when nothing was heard since ``after_s`` seconds (or ever)."""
    return last_seen is None or now - last_seen > timedelta(seconds=after_s)


def effective_status(worker: Worker, now: datetime, timings: Timings) -> WorkerStatus:
    """The status to show: OFFLINE once the last heartbeat (or claim) is older than the limit,
    whether or not the sweep has written it yet."""
    if worker.deleted_at is not None or is_stale(
        worker.last_heartbeat, now, timings.worker_offline_after_s
    ):
        return WorkerStatus.OFFLINE
    return worker.status

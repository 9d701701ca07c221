"""The job state machine (domain.md "Job state machine").

::

    QUEUED ──claim──► CLAIMED ──► PROCESSING ──► SUCCESS | FAILED | CANCELLED
       │                 │  └──────────────────────► SUCCESS | FAILED | CANCELLED
       └─cancel─► CANCELLED        recovery: CLAIMED/PROCESSING ──► QUEUED (retry) or FAILED

Terminal states are final. This module only answers "may this move happen?"; the services in
:mod:`vintner.domain.jobs` and :mod:`vintner.domain.recovery` perform the move as a
compare-and-set on the status they read.
"""

from __future__ import annotations

from enum import Enum

from vintner.domain.model import JobStatus
from vintner.errors import Conflict, InvalidInput

#: statuses a worker may post (anything else is a 400)
WORKER_POSTABLE = frozenset(
    {JobStatus.PROCESSING, JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.CANCELLED}
)

_WORKER_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CLAIMED: WORKER_POSTABLE,
    JobStatus.PROCESSING: WORKER_POSTABLE,
}


class Move(Enum):
    """What a worker's status post amounts to."""

    APPLY = "apply"  # a real transition (or a repeated PROCESSING carrying metadata)
    IDEMPOTENT_RETRY = "retry"  # the same terminal status again: 200, nothing re-applied


def parse_worker_status(value: object) -> JobStatus:
    """The ``status`` field of ``PUT /api/jobs/{id}/status``; 400 for anything not postable."""
    allowed = ", ".join(sorted(s.value for s in WORKER_POSTABLE))
    if not isinstance(value, str):
        raise InvalidInput(
            f"status must be one of {allowed}", errors={"status": [f"Must be one of {allowed}."]}
        )
    try:
        status = JobStatus(value)
    except ValueError:
        status = None
    if status not in WORKER_POSTABLE:
        raise InvalidInput(
            f"status must be one of {allowed}", errors={"status": [f"Must be one of {allowed}."]}
        )
    return status


def worker_move(current: JobStatus, requested: JobStatus) -> Move:
    """Decide a worker's move from ``current`` to ``requested``, or raise 409 naming the
    current status."""
    if requested in _WORKER_TRANSITIONS.get(current, frozenset()):
        return Move.APPLY
    if current.terminal and requested == current:
        return Move.IDEMPOTENT_RETRY
    raise Conflict(f"Job is {current.value}; cannot change it to {requested.value}")


def can_cancel(current: JobStatus) -> bool:
    """An operator may cancel any unfinished job (terminal → 409)."""
    return not current.terminal

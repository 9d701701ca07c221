"""Terraform state per vine, for Terraform's ``http`` backend (operations.md "Terraform state").

The state bytes live in the artifact store at ``vines/<vine id>/terraform.tfstate``; the lock is
a row in the database. Only a worker holding a CLAIMED or PROCESSING job of the vine may read,
write, lock or unlock its state.

A lock is live while its owner holds a job of the vine that it claimed before taking the lock.
Any other lock is stale — its owner crashed, or lost the job that took it (recovered, ended by
the server), even when the same worker has since claimed the vine's next job — and the next
locker takes it over, so an interrupted agent cannot wedge a vine forever.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, BinaryIO

from vintner.domain.model import JsonObject, StateLock, Worker
from vintner.errors import ArtifactNotFound, Conflict, InvalidInput, NotFound
from vintner.ports.artifacts import ArtifactReader, ArtifactStore, StoredArtifact
from vintner.ports.repository import Repository, Transaction

MAX_STATE_BYTES = 100 * 1024 * 1024
NOT_ALLOWED = "Only a worker holding a job of this vine may use its Terraform state"


class StateLocked(Conflict):
    """The state is locked by someone else; ``lock`` is the holder's lock info."""

    def __init__(self, lock: StateLock) -> None:
        super().__init__(f"State is locked (lock {lock.lock_id})")
        self.lock = lock


def state_key(vine_id: uuid.UUID) -> str:
    return f"vines/{vine_id}/terraform.tfstate"


def _holds_vine_job(tx: Transaction, worker_id: uuid.UUID | None, vine_id: uuid.UUID) -> bool:
    if worker_id is None:
        return False
    return any(job.vine_id == vine_id for job in tx.list_held_jobs(worker_id))


def _lock_is_live(tx: Transaction, current: StateLock, vine_id: uuid.UUID) -> bool:
    """True while the lock's owner holds a job of the vine claimed no later than the lock was
    taken (the job that took it). A lock older than the owner's current job of the vine was
    left by an earlier one."""
    if current.worker_id is None:
        return False
    return any(
        job.vine_id == vine_id and (job.claimed_at is None or job.claimed_at <= current.created_at)
        for job in tx.list_held_jobs(current.worker_id)
    )


def check_access(repo: Repository, worker: Worker, vine_id: uuid.UUID) -> None:
    """404 for an unknown vine; 403-like 404 for a worker without a job of it (no probing)."""
    with repo.transaction(readonly=True) as tx:
        if tx.get_vine(vine_id) is None or not _holds_vine_job(tx, worker.id, vine_id):
            raise NotFound(NOT_ALLOWED)


def _check_writer(tx: Transaction, vine_id: uuid.UUID, lock_id: str | None) -> None:
    current = tx.get_state_lock(vine_id)
    if current is not None and current.lock_id != lock_id:
        raise StateLocked(current)


def read_state(store: ArtifactStore, vine_id: uuid.UUID) -> ArtifactReader | None:
    """The state, streamed, or None when the vine has none yet."""
    try:
        return store.open(state_key(vine_id))
    except ArtifactNotFound:
        return None


def write_state(
    repo: Repository, store: ArtifactStore, vine_id: uuid.UUID, source: BinaryIO,
    lock_id: str | None,
) -> StoredArtifact:
    """Replace the state (atomic in the store). Refused while someone else holds the lock."""
    with repo.transaction(readonly=True) as tx:
        _check_writer(tx, vine_id, lock_id)
    return store.put(state_key(vine_id), source, max_bytes=MAX_STATE_BYTES)


def delete_state(repo: Repository, store: ArtifactStore, vine_id: uuid.UUID,
                 lock_id: str | None) -> None:
    with repo.transaction(readonly=True) as tx:
        _check_writer(tx, vine_id, lock_id)
    store.delete(state_key(vine_id))


def _lock_id(info: Any) -> str:
    lock_id = info.get("ID") if isinstance(info, dict) else None
    if not isinstance(lock_id, str) or not lock_id or len(lock_id) > 200:
        raise InvalidInput("Lock info must be a JSON object with a string ID")
    return lock_id


def lock(repo: Repository, worker: Worker, vine_id: uuid.UUID, info: JsonObject,
         now: datetime) -> None:
    """Take the lock, or raise :class:`StateLocked` with the current holder's info."""
    new = StateLock(vine_id=vine_id, lock_id=_lock_id(info), info=info, worker_id=worker.id,
                    created_at=now)
    with repo.transaction() as tx:
        current = tx.acquire_state_lock(new)
        if current is None or current.lock_id == new.lock_id:
            return
        if not _lock_is_live(tx, current, vine_id):
            # stale: its owner lost the job that took it
            tx.release_state_lock(vine_id, current.lock_id)
            if tx.acquire_state_lock(new) is None:
                return
        raise StateLocked(current)


def unlock(repo: Repository, vine_id: uuid.UUID, info: Any) -> None:
    """Release the lock named by the info's ID (any ID when the body has none: force-unlock)."""
    lock_id = info.get("ID") if isinstance(info, dict) else None
    with repo.transaction() as tx:
        current = tx.get_state_lock(vine_id)
        if current is None:
            return
        if lock_id and current.lock_id != lock_id:
            raise StateLocked(current)
        tx.release_state_lock(vine_id, current.lock_id)

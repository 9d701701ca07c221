"""The repository interface (a plugin contract).

A :class:`Repository` is built from a database URL by the registry and hands out
:class:`Transaction` objects. Everything the domain does happens inside one transaction:
``with repo.transaction() as tx: ...`` commits when the block ends normally and rolls back when it
raises. Methods take and return the dataclasses of :mod:`vintner.domain.model`, never ORM rows.

Backends translate storage, nothing more: the state machine, the vine side effects,
finalizeDeployment and the recovery rules live in :mod:`vintner.domain` and only call these
methods. Two operations are backend-specific because they must be atomic in one statement:

* :meth:`Repository.claim_next_job` (``claim_next_job()`` with ``FOR NO KEY UPDATE SKIP LOCKED``
  on PostgreSQL, one ``UPDATE ... RETURNING`` in ``BEGIN IMMEDIATE`` on SQLite);
* :meth:`Transaction.update_job`, a compare-and-set on the status (and holder) the caller read.

Errors: unique-constraint violations → :class:`vintner.errors.DuplicateName`; an unreachable
database → :class:`vintner.errors.Unavailable`. Transient serialization failures and deadlocks
are retried by the backend (the ``transaction`` block may run its body more than once only if
the backend documents it; the SQL backend retries at the statement level instead).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from vintner.domain.model import (
    ClaimedJob,
    CloudIdentity,
    Job,
    JobStatus,
    JobType,
    LogChunk,
    PlanArtifact,
    StateLock,
    Vine,
    Vineyard,
    Worker,
)
from vintner.ports.notifier import LocalNotifier, Notifier


class _Any:
    """Sentinel: 'do not check this field' in compare-and-set conditions."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()


@dataclass(frozen=True)
class JobFilter:
    status: JobStatus | None = None
    vine_id: uuid.UUID | None = None
    vineyard_id: uuid.UUID | None = None
    job_type: JobType | None = None
    worker_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Page:
    limit: int = 20
    offset: int = 0


class Transaction(ABC):
    """One unit of work. Reads see the transaction's snapshot; writes commit together."""

    # -- workers -------------------------------------------------------------------------------
    @abstractmethod
    def add_worker(self, worker: Worker) -> None: ...

    @abstractmethod
    def get_worker(self, worker_id: uuid.UUID, *, include_deleted: bool = False) -> Worker | None:
        ...

    @abstractmethod
    def list_workers(self, page: Page) -> tuple[list[Worker], int]:
        """Non-deleted workers, oldest first, and the total count."""

    @abstractmethod
    def save_worker(self, worker: Worker) -> None:
        """Write every mutable field of ``worker`` (status, version, last_heartbeat, metadata,
        token_hash, deleted_at, name, cloud_identity_id)."""

    @abstractmethod
    def mark_workers_offline(self, heartbeat_before: datetime) -> list[uuid.UUID]:
        """Set status OFFLINE on non-deleted ONLINE/DRAINING workers whose last heartbeat is
        older than ``heartbeat_before`` (or missing). Returns their ids."""

    # -- cloud identities ---------------------------------------------------------------------
    @abstractmethod
    def add_cloud_identity(self, identity: CloudIdentity) -> None: ...

    @abstractmethod
    def get_cloud_identity(self, identity_id: uuid.UUID) -> CloudIdentity | None: ...

    @abstractmethod
    def list_cloud_identities(self, page: Page) -> tuple[list[CloudIdentity], int]: ...

    @abstractmethod
    def save_cloud_identity(self, identity: CloudIdentity) -> None: ...

    # -- vineyards ----------------------------------------------------------------------------
    @abstractmethod
    def add_vineyard(self, vineyard: Vineyard) -> None:
        """Raises DuplicateName when the name is taken."""

    @abstractmethod
    def get_vineyard(self, vineyard_id: uuid.UUID) -> Vineyard | None: ...

    @abstractmethod
    def list_vineyards(self, page: Page) -> tuple[list[Vineyard], int]: ...

    # -- vines (aggregate: the vine with its cluster, databases, caches, network) --------------
    @abstractmethod
    def add_vine(self, vine: Vine) -> None:
        """Insert the vine and all its components. DuplicateName on a repeated component name."""

    @abstractmethod
    def get_vine(self, vine_id: uuid.UUID, *, for_update: bool = False) -> Vine | None:
        """The vine with all components. ``for_update`` locks the vine row (PostgreSQL) so two
        transactions changing the same vine serialise."""

    @abstractmethod
    def list_vines(
        self, page: Page, *, vineyard_id: uuid.UUID | None = None
    ) -> tuple[list[Vine], int]: ...

    @abstractmethod
    def save_vine(self, vine: Vine) -> None:
        """Write the vine and its components: update rows that exist (by id), insert new ones,
        delete component rows no longer present."""

    # -- jobs ---------------------------------------------------------------------------------
    @abstractmethod
    def add_job(self, job: Job) -> None: ...

    @abstractmethod
    def get_job(self, job_id: uuid.UUID) -> Job | None: ...

    @abstractmethod
    def list_jobs(self, flt: JobFilter, page: Page) -> tuple[list[Job], int]:
        """Newest first."""

    @abstractmethod
    def update_job(
        self,
        job_id: uuid.UUID,
        changes: Mapping[str, Any],
        *,
        expected_status: JobStatus | Sequence[JobStatus] | Any = ANY,
        expected_worker_id: uuid.UUID | None | Any = ANY,
    ) -> Job | None:
        """Compare-and-set: apply ``changes`` (field name → new value, names of
        :class:`Job` fields) only if the row still has ``expected_status`` (one or any of several)
        and ``expected_worker_id`` (``None`` means "no holder"). Returns the updated job, or None
        when the condition did not hold (another writer won). ``updated_at`` is set by the
        backend."""

    @abstractmethod
    def find_unfinished_vine_job(self, vine_id: uuid.UUID) -> Job | None:
        """A QUEUED/CLAIMED/PROCESSING PLAN, DEPLOY or DESTROY job of the vine, if any."""

    @abstractmethod
    def list_held_jobs(self, worker_id: uuid.UUID | None = None) -> list[Job]:
        """CLAIMED and PROCESSING jobs (of one worker, or of all), oldest first."""

    @abstractmethod
    def cancel_requested_job_ids(self, worker_id: uuid.UUID) -> list[uuid.UUID]:
        """Ids of jobs held by the worker with a cancel request."""

    # -- logs ---------------------------------------------------------------------------------
    @abstractmethod
    def append_log(
        self,
        job_id: uuid.UUID,
        log_chunk: str,
        stream_type: str,
        seq: int | None,
        now: datetime,
    ) -> tuple[LogChunk, bool]:
        """Insert a chunk. When ``seq`` is given and ``(job_id, seq)`` exists already, insert
        nothing and return ``(existing chunk, True)``; otherwise ``(new chunk, False)``. Must be
        race-free (unique constraint on ``(job_id, seq)``)."""

    @abstractmethod
    def list_logs(self, job_id: uuid.UUID, after: int, limit: int) -> list[LogChunk]:
        """Chunks with ``id > after`` in id order, at most ``limit``."""

    # -- plan artifacts -----------------------------------------------------------------------
    @abstractmethod
    def save_plan_artifact(self, artifact: PlanArtifact) -> None:
        """Insert or replace the row for ``artifact.job_id``."""

    @abstractmethod
    def get_plan_artifact(self, job_id: uuid.UUID) -> PlanArtifact | None: ...

    # -- terraform state locks ----------------------------------------------------------------
    @abstractmethod
    def get_state_lock(self, vine_id: uuid.UUID) -> StateLock | None: ...

    @abstractmethod
    def acquire_state_lock(self, lock: StateLock) -> StateLock | None:
        """Take the vine's lock if free. Returns None on success, or the lock currently held."""

    @abstractmethod
    def release_state_lock(self, vine_id: uuid.UUID, lock_id: str | None) -> bool:
        """Release the lock (only if ``lock_id`` matches, or unconditionally when None)."""


class Repository(ABC):
    """A database backend. Thread-safe: one instance serves every request of a process."""

    #: database URL schemes this backend answers to (entry-point names).
    schemes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> Repository: ...

    @abstractmethod
    def transaction(self, *, readonly: bool = False) -> AbstractContextManager[Transaction]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), or with ``readonly=True`` a
        read-only one (a deferred BEGIN on SQLite, so readers never wait for the write lock;
        writes inside it are a programming error)."""

    @abstractmethod
    def claim_next_job(self, worker_id: uuid.UUID, now: datetime) -> ClaimedJob | None:
        """Atomically claim the next job for the worker (worker-api.md "Claiming a job"):
        first its oldest QUEUED pre-assigned job, then the oldest unassigned QUEUED one
        (matching the worker's cloud identity when bound); oldest = created_at, then id.
        A DRAINING or deleted worker gets nothing. Sets status CLAIMED, worker_id, claimed_at,
        attempts + 1, and counts as a heartbeat (last_heartbeat = now; OFFLINE → ONLINE)."""

    @abstractmethod
    def migrate(self) -> None:
        """Bring the schema to the newest version (idempotent)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise :class:`vintner.errors.Unavailable` if the database cannot be reached."""

    def create_notifier(self) -> Notifier:
        """A :class:`~vintner.ports.notifier.Notifier` that reaches every process sharing this
        database (LISTEN/NOTIFY on PostgreSQL, polling on SQLite). The default only reaches
        this process, which is right for single-process backends such as the in-memory fake.
        Call once per process and ``close()`` it at shutdown."""
        return LocalNotifier()

    def close(self) -> None:
        """Release connections."""

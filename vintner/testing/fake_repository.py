"""An in-memory :class:`Repository` for tests (yours and ours). Passes the repository contract.

Thread-safe in the simplest way: a transaction holds one lock from start to end (like SQLite's
``BEGIN IMMEDIATE``) and works on a copy of the data that replaces the committed data only when
the block ends normally. Objects handed in and out are copies, so mutating a returned object
changes nothing until it is saved — the same as with a database.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from vintner.domain.model import (
    UNFINISHED_STATUSES,
    VINE_JOB_TYPES,
    ClaimedJob,
    CloudIdentity,
    Job,
    JobStatus,
    LogChunk,
    PlanArtifact,
    StateLock,
    StreamType,
    Vine,
    Vineyard,
    Worker,
    WorkerStatus,
    utcnow,
)
from vintner.errors import DuplicateName
from vintner.ports.repository import ANY, JobFilter, Page, Repository, Transaction

T = TypeVar("T")

_JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(Job)) - {"id"}
_HELD = (JobStatus.CLAIMED, JobStatus.PROCESSING)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given; use an aware UTC datetime (utcnow())")
        return value.astimezone(UTC)
    return value


def _stored(obj: T) -> T:
    """A deep copy with every datetime field (also in nested components) in UTC."""
    obj = copy.deepcopy(obj)

    def fix(item: Any) -> None:
        for f in dataclasses.fields(item):
            value = getattr(item, f.name)
            if isinstance(value, datetime):
                setattr(item, f.name, _utc(value))
            elif dataclasses.is_dataclass(value) and not isinstance(value, type):
                fix(value)
            elif isinstance(value, list):
                for element in value:
                    if dataclasses.is_dataclass(element) and not isinstance(element, type):
                        fix(element)

    fix(obj)
    return obj


@dataclass
class _State:
    workers: dict[uuid.UUID, Worker] = field(default_factory=dict)
    identities: dict[uuid.UUID, CloudIdentity] = field(default_factory=dict)
    vineyards: dict[uuid.UUID, Vineyard] = field(default_factory=dict)
    vines: dict[uuid.UUID, Vine] = field(default_factory=dict)
    jobs: dict[uuid.UUID, Job] = field(default_factory=dict)
    logs: list[LogChunk] = field(default_factory=list)
    next_log_id: int = 1
    artifacts: dict[uuid.UUID, PlanArtifact] = field(default_factory=dict)
    locks: dict[uuid.UUID, StateLock] = field(default_factory=dict)


def _page(items: list[T], page: Page) -> list[T]:
    return items[page.offset : page.offset + page.limit]


def _check_component_names(vine: Vine) -> None:
    for kind, label in (("databases", "database"), ("caches", "cache")):
        names = [c.name for c in getattr(vine, kind)]
        if len(names) != len(set(names)):
            raise DuplicateName(f"A {label} with this name already exists in this vine")


def _sorted_components(vine: Vine) -> Vine:
    vine.databases.sort(key=lambda c: (c.created_at, c.name))
    vine.caches.sort(key=lambda c: (c.created_at, c.name))
    return vine


class FakeTransaction(Transaction):
    def __init__(self, state: _State) -> None:
        self._s = state

    # -- workers ------------------------------------------------------------------------------
    def add_worker(self, worker: Worker) -> None:
        if worker.id in self._s.workers:
            raise DuplicateName("A record with this identifier already exists")
        self._s.workers[worker.id] = _stored(worker)

    def get_worker(self, worker_id: uuid.UUID, *, include_deleted: bool = False) -> Worker | None:
        worker = self._s.workers.get(worker_id)
        if worker is None or (worker.deleted_at is not None and not include_deleted):
            return None
        return copy.deepcopy(worker)

    def list_workers(self, page: Page) -> tuple[list[Worker], int]:
        live = sorted(
            (w for w in self._s.workers.values() if w.deleted_at is None),
            key=lambda w: (w.created_at, w.id),
        )
        return copy.deepcopy(_page(live, page)), len(live)

    def save_worker(self, worker: Worker) -> None:
        if worker.id in self._s.workers:
            created_at = self._s.workers[worker.id].created_at
            stored = _stored(worker)
            stored.created_at = created_at
            self._s.workers[worker.id] = stored

    def mark_workers_offline(self, heartbeat_before: datetime) -> list[uuid.UUID]:
        cutoff = _utc(heartbeat_before)
        marked = []
        for worker in self._s.workers.values():
            if (
                worker.deleted_at is None
                and worker.status in (WorkerStatus.ONLINE, WorkerStatus.DRAINING)
                and (worker.last_heartbeat is None or worker.last_heartbeat < cutoff)
            ):
                worker.status = WorkerStatus.OFFLINE
                marked.append(worker.id)
        return marked

    # -- cloud identities ---------------------------------------------------------------------
    def add_cloud_identity(self, identity: CloudIdentity) -> None:
        if identity.id in self._s.identities:
            raise DuplicateName("A record with this identifier already exists")
        self._s.identities[identity.id] = _stored(identity)

    def get_cloud_identity(self, identity_id: uuid.UUID) -> CloudIdentity | None:
        return copy.deepcopy(self._s.identities.get(identity_id))

    def list_cloud_identities(self, page: Page) -> tuple[list[CloudIdentity], int]:
        items = sorted(self._s.identities.values(), key=lambda i: (i.created_at, i.id))
        return copy.deepcopy(_page(items, page)), len(items)

    def save_cloud_identity(self, identity: CloudIdentity) -> None:
        if identity.id in self._s.identities:
            stored = _stored(identity)
            stored.created_at = self._s.identities[identity.id].created_at
            self._s.identities[identity.id] = stored

    # -- vineyards ----------------------------------------------------------------------------
    def add_vineyard(self, vineyard: Vineyard) -> None:
        if vineyard.id in self._s.vineyards:
            raise DuplicateName("A record with this identifier already exists")
        if any(v.name == vineyard.name for v in self._s.vineyards.values()):
            raise DuplicateName("A vineyard with this name already exists")
        self._s.vineyards[vineyard.id] = _stored(vineyard)

    def get_vineyard(self, vineyard_id: uuid.UUID) -> Vineyard | None:
        return copy.deepcopy(self._s.vineyards.get(vineyard_id))

    def list_vineyards(self, page: Page) -> tuple[list[Vineyard], int]:
        items = sorted(self._s.vineyards.values(), key=lambda v: (v.created_at, v.id))
        return copy.deepcopy(_page(items, page)), len(items)

    # -- vines --------------------------------------------------------------------------------
    def add_vine(self, vine: Vine) -> None:
        if vine.id in self._s.vines:
            raise DuplicateName("A record with this identifier already exists")
        _check_component_names(vine)
        self._s.vines[vine.id] = _sorted_components(_stored(vine))

    def get_vine(self, vine_id: uuid.UUID, *, for_update: bool = False) -> Vine | None:
        # for_update: the transaction lock already serialises everything.
        return copy.deepcopy(self._s.vines.get(vine_id))

    def list_vines(
        self, page: Page, *, vineyard_id: uuid.UUID | None = None
    ) -> tuple[list[Vine], int]:
        items = sorted(
            (v for v in self._s.vines.values()
             if vineyard_id is None or v.vineyard_id == vineyard_id),
            key=lambda v: (v.created_at, v.id),
        )
        return copy.deepcopy(_page(items, page)), len(items)

    def save_vine(self, vine: Vine) -> None:
        old = self._s.vines.get(vine.id)
        if old is None:
            return
        _check_component_names(vine)
        stored = _sorted_components(_stored(vine))
        stored.created_at = old.created_at
        # Components that already existed keep their creation time, like rows do.
        created = {c.id: c.created_at for c in old.components()}
        if old.network is not None:
            created[old.network.id] = old.network.created_at
        for component in [*stored.components(), stored.network]:
            if component is not None and component.id in created:
                component.created_at = created[component.id]
        self._s.vines[vine.id] = _sorted_components(stored)

    # -- jobs ---------------------------------------------------------------------------------
    def add_job(self, job: Job) -> None:
        if job.id in self._s.jobs:
            raise DuplicateName("A record with this identifier already exists")
        self._s.jobs[job.id] = _stored(job)

    def get_job(self, job_id: uuid.UUID) -> Job | None:
        return copy.deepcopy(self._s.jobs.get(job_id))

    def list_jobs(self, flt: JobFilter, page: Page) -> tuple[list[Job], int]:
        def keep(job: Job) -> bool:
            return (
                (flt.status is None or job.status == flt.status)
                and (flt.vine_id is None or job.vine_id == flt.vine_id)
                and (flt.vineyard_id is None or job.vineyard_id == flt.vineyard_id)
                and (flt.job_type is None or job.job_type == flt.job_type)
                and (flt.worker_id is None or job.worker_id == flt.worker_id)
            )

        items = sorted(
            (j for j in self._s.jobs.values() if keep(j)),
            key=lambda j: (j.created_at, j.id),
            reverse=True,
        )
        return copy.deepcopy(_page(items, page)), len(items)

    def update_job(
        self,
        job_id: uuid.UUID,
        changes: Mapping[str, Any],
        *,
        expected_status: JobStatus | Sequence[JobStatus] | Any = ANY,
        expected_worker_id: uuid.UUID | None | Any = ANY,
    ) -> Job | None:
        unknown = set(changes) - _JOB_FIELDS
        if unknown:
            raise ValueError(f"update_job: unknown job field(s) {sorted(unknown)}")
        job = self._s.jobs.get(job_id)
        if job is None:
            return None
        if expected_status is not ANY:
            allowed = (
                [expected_status] if isinstance(expected_status, str) else list(expected_status)
            )
            if job.status not in allowed:
                return None
        if expected_worker_id is not ANY and job.worker_id != expected_worker_id:
            return None
        for name, value in changes.items():
            setattr(job, name, copy.deepcopy(_utc(value)))
        job.updated_at = _utc(changes.get("updated_at") or utcnow())
        return copy.deepcopy(job)

    def find_unfinished_vine_job(self, vine_id: uuid.UUID) -> Job | None:
        found = sorted(
            (
                j for j in self._s.jobs.values()
                if j.vine_id == vine_id
                and j.job_type in VINE_JOB_TYPES
                and j.status in UNFINISHED_STATUSES
            ),
            key=lambda j: (j.created_at, j.id),
        )
        return copy.deepcopy(found[0]) if found else None

    def list_held_jobs(self, worker_id: uuid.UUID | None = None) -> list[Job]:
        held = sorted(
            (
                j for j in self._s.jobs.values()
                if j.status in _HELD and (worker_id is None or j.worker_id == worker_id)
            ),
            key=lambda j: (j.created_at, j.id),
        )
        return copy.deepcopy(held)

    def cancel_requested_job_ids(self, worker_id: uuid.UUID) -> list[uuid.UUID]:
        return [
            j.id for j in self.list_held_jobs(worker_id) if j.cancel_requested_at is not None
        ]

    # -- logs ---------------------------------------------------------------------------------
    def append_log(
        self,
        job_id: uuid.UUID,
        log_chunk: str,
        stream_type: str,
        seq: int | None,
        now: datetime,
    ) -> tuple[LogChunk, bool]:
        if seq is not None:
            for chunk in self._s.logs:
                if chunk.job_id == job_id and chunk.seq == seq:
                    return copy.deepcopy(chunk), True
        chunk = LogChunk(
            id=self._s.next_log_id,
            job_id=job_id,
            log_chunk=log_chunk,
            stream_type=StreamType(stream_type),
            seq=seq,
            created_at=_utc(now),
        )
        self._s.next_log_id += 1
        self._s.logs.append(chunk)
        return copy.deepcopy(chunk), False

    def list_logs(self, job_id: uuid.UUID, after: int, limit: int) -> list[LogChunk]:
        found = [c for c in self._s.logs if c.job_id == job_id and c.id > after]
        return copy.deepcopy(found[:limit])

    # -- plan artifacts -----------------------------------------------------------------------
    def save_plan_artifact(self, artifact: PlanArtifact) -> None:
        self._s.artifacts[artifact.job_id] = _stored(artifact)

    def get_plan_artifact(self, job_id: uuid.UUID) -> PlanArtifact | None:
        return copy.deepcopy(self._s.artifacts.get(job_id))

    # -- terraform state locks ----------------------------------------------------------------
    def get_state_lock(self, vine_id: uuid.UUID) -> StateLock | None:
        return copy.deepcopy(self._s.locks.get(vine_id))

    def acquire_state_lock(self, lock: StateLock) -> StateLock | None:
        current = self._s.locks.get(lock.vine_id)
        if current is not None:
            return copy.deepcopy(current)
        self._s.locks[lock.vine_id] = _stored(lock)
        return None

    def release_state_lock(self, vine_id: uuid.UUID, lock_id: str | None) -> bool:
        current = self._s.locks.get(vine_id)
        if current is None or (lock_id is not None and current.lock_id != lock_id):
            return False
        del self._s.locks[vine_id]
        return True


class FakeRepository(Repository):
    """In-memory repository. ``FakeRepository()`` or ``FakeRepository.from_url("memory://")``."""

    schemes: ClassVar[tuple[str, ...]] = ("memory",)

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._state = _State()

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any] | None = None) -> FakeRepository:
        return cls()

    @contextmanager
    def transaction(self) -> Iterator[FakeTransaction]:
        with self._lock:
            working = copy.deepcopy(self._state)
            yield FakeTransaction(working)
            # Only reached when the block did not raise: commit by swapping in the copy.
            self._state = working

    def claim_next_job(self, worker_id: uuid.UUID, now: datetime) -> ClaimedJob | None:
        now = _utc(now)
        with self.transaction() as tx:
            state = tx._s
            worker = state.workers.get(worker_id)
            if worker is None or worker.deleted_at is not None:
                return None
            worker.last_heartbeat = now
            if worker.status == WorkerStatus.OFFLINE:
                worker.status = WorkerStatus.ONLINE
            if worker.status == WorkerStatus.DRAINING:
                return None

            def eligible(job: Job) -> bool:
                if job.status != JobStatus.QUEUED:
                    return False
                if job.assigned_worker_id is not None:
                    return job.assigned_worker_id == worker_id
                return (
                    worker.cloud_identity_id is None
                    or job.cloud_identity_id == worker.cloud_identity_id
                )

            candidates = sorted(
                (j for j in state.jobs.values() if eligible(j)),
                key=lambda j: (j.assigned_worker_id is None, j.created_at, j.id),
            )
            if not candidates:
                return None
            job = candidates[0]
            job.status = JobStatus.CLAIMED
            job.worker_id = worker_id
            job.claimed_at = now
            job.attempts += 1
            job.updated_at = now
            identity = (
                state.identities.get(job.cloud_identity_id)
                if job.cloud_identity_id is not None
                else None
            )
            return ClaimedJob(job=copy.deepcopy(job), cloud_identity=copy.deepcopy(identity))

    def migrate(self) -> None:
        """Nothing to migrate."""

    def ping(self) -> None:
        """Always reachable."""

"""The SQL repository: one SQLAlchemy Core implementation for SQLite and PostgreSQL.

Only two things differ per dialect: the claim (:mod:`backends.sql.claim_sqlite`,
:mod:`backends.sql.claim_postgres`) and engine setup (:mod:`backends.sql.engine`). Everything
else is portable Core: ``RETURNING`` and ``INSERT … ON CONFLICT`` exist on both.

This module stores, claims atomically and compares-and-sets; it decides nothing (no state
machine, no side effects — those live in :mod:`vintner.domain`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Table,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import ColumnElement

from backends.sql import claim_postgres, claim_sqlite, migrations
from backends.sql import mapping as m
from backends.sql.engine import build_engine, normalize_url
from backends.sql.errors import translate, with_retries
from backends.sql.models import (
    COMPONENT_TABLES,
    cloud_identities,
    job_logs,
    jobs,
    plan_artifacts,
    terraform_state_locks,
    vines,
    vineyards,
    workers,
)
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
    Vine,
    Vineyard,
    Worker,
    WorkerStatus,
    utcnow,
)
from vintner.errors import Unavailable
from vintner.ports.notifier import LocalNotifier
from vintner.ports.repository import ANY, JobFilter, Page, Repository, Transaction

T = TypeVar("T")

_HELD = (JobStatus.CLAIMED, JobStatus.PROCESSING)


class SqlTransaction(Transaction):
    """A :class:`Transaction` over one SQLAlchemy connection inside ``BEGIN`` (``BEGIN
    IMMEDIATE`` on SQLite). Created by :meth:`SqlRepository.transaction`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"

    # -- helpers ------------------------------------------------------------------------------
    def _one(self, stmt: Any) -> RowMapping | None:
        return self._conn.execute(stmt).mappings().first()

    def _all(self, stmt: Any) -> Sequence[RowMapping]:
        return self._conn.execute(stmt).mappings().all()

    def _count(self, table: Table, *where: ColumnElement[bool]) -> int:
        return int(self._conn.execute(select(func.count()).select_from(table).where(*where))
                   .scalar_one())

    def _guarded(self, fn: Callable[[], T]) -> T:
        """Run writes that may hit a unique constraint in a savepoint, so a DuplicateName
        leaves the surrounding transaction usable (PostgreSQL aborts the whole transaction on
        an error otherwise)."""
        try:
            with self._conn.begin_nested():
                return fn()
        except sa_exc.IntegrityError as exc:
            raise translate(exc) from exc

    def _translated(self, fn: Callable[[], T]) -> T:
        """Run a write whose only expected failure is a bug (a repeated primary key): translate
        the error at once, without the cost of a savepoint."""
        try:
            return fn()
        except sa_exc.IntegrityError as exc:
            raise translate(exc) from exc

    def _insert(self, table: Table) -> Any:
        """A dialect-specific INSERT (for ``on_conflict_*``)."""
        if self._postgres:
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    # -- workers ------------------------------------------------------------------------------
    def add_worker(self, worker: Worker) -> None:
        self._translated(
            lambda: self._conn.execute(insert(workers).values(m.worker_to_row(worker)))
        )

    def get_worker(self, worker_id: uuid.UUID, *, include_deleted: bool = False) -> Worker | None:
        stmt = select(workers).where(workers.c.id == worker_id)
        if not include_deleted:
            stmt = stmt.where(workers.c.deleted_at.is_(None))
        row = self._one(stmt)
        return m.worker_from_row(row) if row else None

    def list_workers(self, page: Page) -> tuple[list[Worker], int]:
        live = workers.c.deleted_at.is_(None)
        rows = self._all(
            select(workers).where(live).order_by(workers.c.created_at, workers.c.id)
            .limit(page.limit).offset(page.offset)
        )
        return [m.worker_from_row(r) for r in rows], self._count(workers, live)

    def save_worker(self, worker: Worker) -> None:
        values = m.worker_to_row(worker)
        del values["id"], values["created_at"]
        self._conn.execute(update(workers).where(workers.c.id == worker.id).values(values))

    def mark_workers_offline(self, heartbeat_before: datetime) -> list[uuid.UUID]:
        w = workers.c
        rows = self._conn.execute(
            update(workers)
            .where(
                w.deleted_at.is_(None),
                w.status.in_([WorkerStatus.ONLINE, WorkerStatus.DRAINING]),
                w.last_heartbeat.is_(None) | (w.last_heartbeat < heartbeat_before),
            )
            .values(status=WorkerStatus.OFFLINE)
            .returning(w.id)
        ).scalars().all()
        return list(rows)

    # -- cloud identities ---------------------------------------------------------------------
    def add_cloud_identity(self, identity: CloudIdentity) -> None:
        self._translated(
            lambda: self._conn.execute(
                insert(cloud_identities).values(m.identity_to_row(identity))
            )
        )

    def get_cloud_identity(self, identity_id: uuid.UUID) -> CloudIdentity | None:
        row = self._one(select(cloud_identities).where(cloud_identities.c.id == identity_id))
        return m.identity_from_row(row) if row else None

    def list_cloud_identities(self, page: Page) -> tuple[list[CloudIdentity], int]:
        c = cloud_identities.c
        rows = self._all(
            select(cloud_identities).order_by(c.created_at, c.id)
            .limit(page.limit).offset(page.offset)
        )
        return [m.identity_from_row(r) for r in rows], self._count(cloud_identities)

    def save_cloud_identity(self, identity: CloudIdentity) -> None:
        values = m.identity_to_row(identity)
        del values["id"], values["created_at"]
        self._conn.execute(
            update(cloud_identities).where(cloud_identities.c.id == identity.id).values(values)
        )

    # -- vineyards ----------------------------------------------------------------------------
    def add_vineyard(self, vineyard: Vineyard) -> None:
        self._guarded(
            lambda: self._conn.execute(insert(vineyards).values(m.vineyard_to_row(vineyard)))
        )

    def get_vineyard(self, vineyard_id: uuid.UUID) -> Vineyard | None:
        row = self._one(select(vineyards).where(vineyards.c.id == vineyard_id))
        return m.vineyard_from_row(row) if row else None

    def list_vineyards(self, page: Page) -> tuple[list[Vineyard], int]:
        c = vineyards.c
        rows = self._all(
            select(vineyards).order_by(c.created_at, c.id).limit(page.limit).offset(page.offset)
        )
        return [m.vineyard_from_row(r) for r in rows], self._count(vineyards)

    # -- vines --------------------------------------------------------------------------------
    def add_vine(self, vine: Vine) -> None:
        def write() -> None:
            self._conn.execute(insert(vines).values(m.vine_to_row(vine)))
            for kind, table in COMPONENT_TABLES.items():
                rows = [m.component_to_row(c, vine.id) for c in _components(vine, kind)]
                if rows:
                    self._conn.execute(insert(table), rows)

        self._guarded(write)

    def get_vine(self, vine_id: uuid.UUID, *, for_update: bool = False) -> Vine | None:
        stmt = select(vines).where(vines.c.id == vine_id)
        if for_update:
            # Row lock on PostgreSQL; SQLite renders nothing (BEGIN IMMEDIATE already
            # serialises every write transaction).
            stmt = stmt.with_for_update()
        row = self._one(stmt)
        if row is None:
            return None
        return self._load_components([m.vine_from_row(row)])[0]

    def list_vines(
        self, page: Page, *, vineyard_id: uuid.UUID | None = None
    ) -> tuple[list[Vine], int]:
        where = [vines.c.vineyard_id == vineyard_id] if vineyard_id is not None else []
        rows = self._all(
            select(vines).where(*where).order_by(vines.c.created_at, vines.c.id)
            .limit(page.limit).offset(page.offset)
        )
        items = self._load_components([m.vine_from_row(r) for r in rows])
        return items, self._count(vines, *where)

    def _load_components(self, items: list[Vine]) -> list[Vine]:
        if not items:
            return items
        by_id = {v.id: v for v in items}
        for kind, table in COMPONENT_TABLES.items():
            # Databases and caches come back ordered by (created_at, name): stable and
            # matching the order they were added in practice.
            order = table.c.name if "name" in table.c else table.c.id
            rows = self._all(
                select(table).where(table.c.vine_id.in_(list(by_id)))
                .order_by(table.c.created_at, order)
            )
            for row in rows:
                vine = by_id[row["vine_id"]]
                component = m.component_from_row(kind, row)
                if kind in ("databases", "caches"):
                    getattr(vine, kind).append(component)
                else:
                    setattr(vine, kind, component)
        return items

    def save_vine(self, vine: Vine) -> None:
        def write() -> None:
            values = m.vine_to_row(vine)
            del values["id"], values["created_at"]
            self._conn.execute(update(vines).where(vines.c.id == vine.id).values(values))
            for kind, table in COMPONENT_TABLES.items():
                items = _components(vine, kind)
                existing = set(
                    self._conn.execute(
                        select(table.c.id).where(table.c.vine_id == vine.id)
                    ).scalars()
                )
                keep = {c.id for c in items}
                # Delete first so a removed row's name can be reused by a new row.
                gone = existing - keep
                if gone:
                    self._conn.execute(
                        delete(table).where(table.c.vine_id == vine.id, table.c.id.in_(gone))
                    )
                for component in items:
                    row = m.component_to_row(component, vine.id)
                    if component.id in existing:
                        del row["id"], row["created_at"]
                        self._conn.execute(
                            update(table).where(table.c.id == component.id).values(row)
                        )
                    else:
                        self._conn.execute(insert(table).values(row))

        self._guarded(write)

    # -- jobs ---------------------------------------------------------------------------------
    def add_job(self, job: Job) -> None:
        self._translated(lambda: self._conn.execute(insert(jobs).values(m.job_to_row(job))))

    def get_job(self, job_id: uuid.UUID) -> Job | None:
        row = self._one(select(jobs).where(jobs.c.id == job_id))
        return m.job_from_row(row) if row else None

    def list_jobs(self, flt: JobFilter, page: Page) -> tuple[list[Job], int]:
        j = jobs.c
        where: list[ColumnElement[bool]] = []
        if flt.status is not None:
            where.append(j.status == flt.status)
        if flt.vine_id is not None:
            where.append(j.vine_id == flt.vine_id)
        if flt.vineyard_id is not None:
            where.append(j.vineyard_id == flt.vineyard_id)
        if flt.job_type is not None:
            where.append(j.job_type == flt.job_type)
        if flt.worker_id is not None:
            where.append(j.worker_id == flt.worker_id)
        rows = self._all(
            select(jobs).where(*where).order_by(j.created_at.desc(), j.id.desc())
            .limit(page.limit).offset(page.offset)
        )
        return [m.job_from_row(r) for r in rows], self._count(jobs, *where)

    def update_job(
        self,
        job_id: uuid.UUID,
        changes: Mapping[str, Any],
        *,
        expected_status: JobStatus | Sequence[JobStatus] | Any = ANY,
        expected_worker_id: uuid.UUID | None | Any = ANY,
    ) -> Job | None:
        unknown = set(changes) - m.JOB_FIELDS
        if unknown:
            raise ValueError(f"update_job: unknown job field(s) {sorted(unknown)}")
        values = dict(changes)
        values["updated_at"] = values.get("updated_at") or utcnow()
        j = jobs.c
        # The compare-and-set: the condition the caller read is part of the UPDATE itself, so
        # of two racing writers exactly one matches (PostgreSQL re-checks the WHERE clause on
        # the newest row version after waiting for the other writer's lock).
        where: list[ColumnElement[bool]] = [j.id == job_id]
        if expected_status is not ANY:
            if isinstance(expected_status, str):
                where.append(j.status == expected_status)
            else:
                where.append(j.status.in_(list(expected_status)))
        if expected_worker_id is not ANY:
            if expected_worker_id is None:
                where.append(j.worker_id.is_(None))
            else:
                where.append(j.worker_id == expected_worker_id)
        row = self._one(update(jobs).where(*where).values(values).returning(*jobs.c))
        return m.job_from_row(row) if row else None

    def find_unfinished_vine_job(self, vine_id: uuid.UUID) -> Job | None:
        j = jobs.c
        row = self._one(
            select(jobs)
            .where(
                j.vine_id == vine_id,
                j.job_type.in_(list(VINE_JOB_TYPES)),
                j.status.in_(list(UNFINISHED_STATUSES)),
            )
            .order_by(j.created_at, j.id)
            .limit(1)
        )
        return m.job_from_row(row) if row else None

    def list_held_jobs(self, worker_id: uuid.UUID | None = None) -> list[Job]:
        j = jobs.c
        stmt = select(jobs).where(j.status.in_(_HELD)).order_by(j.created_at, j.id)
        if worker_id is not None:
            stmt = stmt.where(j.worker_id == worker_id)
        return [m.job_from_row(r) for r in self._all(stmt)]

    def cancel_requested_job_ids(self, worker_id: uuid.UUID) -> list[uuid.UUID]:
        j = jobs.c
        return list(
            self._conn.execute(
                select(j.id)
                .where(
                    j.worker_id == worker_id,
                    j.status.in_(_HELD),
                    j.cancel_requested_at.is_not(None),
                )
                .order_by(j.created_at, j.id)
            ).scalars()
        )

    # -- logs ---------------------------------------------------------------------------------
    def append_log(
        self,
        job_id: uuid.UUID,
        log_chunk: str,
        stream_type: str,
        seq: int | None,
        now: datetime,
    ) -> tuple[LogChunk, bool]:
        if self._postgres:
            # Serialise appends per job until commit, so a job's log ids are allocated in
            # commit order. Without it two concurrent appends (an agent's retry racing its next
            # chunk) could commit id 101 before id 100, and a reader paging with "id > after"
            # would skip 100 for good. (SQLite's BEGIN IMMEDIATE already serialises.)
            self._conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _advisory_key(job_id)}
            )
        values = {
            "job_id": job_id,
            "log_chunk": log_chunk,
            "stream_type": stream_type,
            "seq": seq,
            "created_at": now,
        }
        if seq is None:
            row = self._one(insert(job_logs).values(values).returning(*job_logs.c))
            assert row is not None
            return m.log_from_row(row), False
        # Race-free dedupe: the unique constraint decides. ON CONFLICT DO NOTHING returns no
        # row when (job_id, seq) exists; on PostgreSQL it first waits for a concurrent
        # uncommitted insert of the same key, so the SELECT below (a fresh READ COMMITTED
        # snapshot) then sees the committed winner.
        row = self._one(
            self._insert(job_logs)
            .values(values)
            .on_conflict_do_nothing(index_elements=["job_id", "seq"])
            .returning(*job_logs.c)
        )
        if row is not None:
            return m.log_from_row(row), False
        existing = self._one(
            select(job_logs).where(job_logs.c.job_id == job_id, job_logs.c.seq == seq)
        )
        assert existing is not None
        return m.log_from_row(existing), True

    def list_logs(self, job_id: uuid.UUID, after: int, limit: int) -> list[LogChunk]:
        c = job_logs.c
        rows = self._all(
            select(job_logs).where(c.job_id == job_id, c.id > after).order_by(c.id).limit(limit)
        )
        return [m.log_from_row(r) for r in rows]

    # -- plan artifacts -----------------------------------------------------------------------
    def save_plan_artifact(self, artifact: PlanArtifact) -> None:
        values = m.artifact_to_row(artifact)
        stmt = self._insert(plan_artifacts).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["job_id"],
            set_={k: stmt.excluded[k] for k in ("key", "size", "sha256", "created_at")},
        )
        self._conn.execute(stmt)

    def get_plan_artifact(self, job_id: uuid.UUID) -> PlanArtifact | None:
        row = self._one(select(plan_artifacts).where(plan_artifacts.c.job_id == job_id))
        return m.artifact_from_row(row) if row else None

    # -- terraform state locks ----------------------------------------------------------------
    def get_state_lock(self, vine_id: uuid.UUID) -> StateLock | None:
        row = self._one(
            select(terraform_state_locks).where(terraform_state_locks.c.vine_id == vine_id)
        )
        return m.lock_from_row(row) if row else None

    def acquire_state_lock(self, lock: StateLock) -> StateLock | None:
        # Loop: on PostgreSQL the holder may release between our conflicting INSERT and the
        # SELECT of the current lock; then we simply try again.
        for _ in range(10):
            inserted = self._one(
                self._insert(terraform_state_locks)
                .values(m.lock_to_row(lock))
                .on_conflict_do_nothing(index_elements=["vine_id"])
                .returning(terraform_state_locks.c.vine_id)
            )
            if inserted is not None:
                return None
            current = self.get_state_lock(lock.vine_id)
            if current is not None:
                return current
        raise Unavailable("The state lock table is too busy; try again")

    def release_state_lock(self, vine_id: uuid.UUID, lock_id: str | None) -> bool:
        t = terraform_state_locks.c
        stmt = delete(terraform_state_locks).where(t.vine_id == vine_id)
        if lock_id is not None:
            stmt = stmt.where(t.lock_id == lock_id)
        return self._conn.execute(stmt).rowcount > 0


def _advisory_key(job_id: uuid.UUID) -> int:
    """A bigint advisory-lock key for a job (a collision only serialises two jobs' appends)."""
    return int.from_bytes(job_id.bytes[:8], "big", signed=True)


def _components(vine: Vine, kind: str) -> list[Any]:
    value = getattr(vine, kind)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class SqlRepository(Repository):
    """SQLite (file) and PostgreSQL (psycopg 3) repository.

    Options (``from_url(url, options)``): ``pool_size``, ``max_overflow``, ``pool_timeout``,
    ``pool_recycle``, ``echo``, ``busy_timeout_s`` (SQLite). Unknown options are refused.
    """

    schemes: ClassVar[tuple[str, ...]] = ("sqlite", "postgresql")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._claim = (
            claim_postgres.claim_next_job
            if self.dialect == "postgresql"
            else claim_sqlite.claim_next_job
        )

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any] | None = None) -> SqlRepository:
        return cls(build_engine(normalize_url(url), dict(options or {})))

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[SqlTransaction]:
        try:
            with self.engine.connect() as conn:
                if readonly:
                    # engine.py's begin hook emits a deferred BEGIN for these (SQLite readers
                    # then never wait for the write lock)
                    conn.execution_options(vintner_readonly=True)
                with conn.begin():
                    yield SqlTransaction(conn)
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    def claim_next_job(self, worker_id: uuid.UUID, now: datetime) -> ClaimedJob | None:
        def attempt() -> ClaimedJob | None:
            with self.engine.begin() as conn:
                row = self._claim(conn, worker_id, now)
                if row is None:
                    return None
                job = m.job_from_row(row)
                identity = None
                if job.cloud_identity_id is not None:
                    identity = SqlTransaction(conn).get_cloud_identity(job.cloud_identity_id)
                return ClaimedJob(job=job, cloud_identity=identity)

        try:
            return with_retries(attempt)
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    def migrate(self) -> None:
        try:
            migrations.upgrade(self.engine)
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        try:
            return migrations.current_revision(self.engine)
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    def head_revision(self) -> str | None:
        """The newest revision of the migration history this code ships."""
        return migrations.head_revision()

    def create_notifier(self) -> LocalNotifier:
        """LISTEN/NOTIFY on PostgreSQL, ``PRAGMA data_version`` polling on SQLite
        (:mod:`backends.sql.notify`)."""
        from backends.sql.notify import create_notifier

        return create_notifier(self.engine.url)

    def ping(self) -> None:
        # A raw DBAPI connection: on SQLite this avoids the BEGIN IMMEDIATE (write lock) that
        # an SQLAlchemy transaction would take just to run SELECT 1.
        try:
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("SELECT 1")
                cursor.fetchall()
                cursor.close()
            finally:
                raw.close()
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc
        except Exception as exc:  # driver errors raised before SQLAlchemy wraps them
            raise Unavailable("The database cannot be reached") from exc

    def close(self) -> None:
        self.engine.dispose()

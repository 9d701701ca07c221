"""The SQL schema (domain.md's tables and columns are the contract), as SQLAlchemy Core tables.

Core ``Table`` objects rather than ORM classes: the repository maps rows to the domain
dataclasses itself (:mod:`backends.sql.mapping`), and every write is an explicit statement
(compare-and-set, ``ON CONFLICT``, ``RETURNING``), which is clearer in Core than through a
unit-of-work session.

The Alembic history (top-level ``alembic/``) must produce exactly this schema; the test
``tests/sql/test_migrations.py`` compares both with ``alembic.autogenerate.compare_metadata``.
"""

from __future__ import annotations

from enum import Enum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

from backends.sql.types import BigIntId, EnumText, JSONType, UTCDateTime
from vintner.domain.model import (
    ComponentStatus,
    EnvironmentStage,
    JobStatus,
    JobType,
    Provider,
    StreamType,
    VineStatus,
    WorkerMode,
    WorkerStatus,
)

#: Every constraint and index gets a deterministic name, so migrations (and SQLite batch mode,
#: which recreates tables) can refer to them on both dialects.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _one_of(column: str, enum: type[Enum], name: str | None = None) -> CheckConstraint:
    values = ", ".join(f"'{m.value}'" for m in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name or column)


def _timestamps() -> list[Column]:
    return [
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    ]


def _component_status() -> list[Column]:
    return [
        Column("status", EnumText(16), nullable=False, server_default="PENDING"),
        Column("status_message", Text()),
        *_timestamps(),
    ]


cloud_identities = Table(
    "cloud_identities",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("provider", EnumText(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("credentials", JSONType, nullable=False),
    Column("is_verified", Boolean(), nullable=False, server_default="0"),
    *_timestamps(),
    _one_of("provider", Provider),
)

workers = Table(
    "workers",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("mode", EnumText(16), nullable=False),
    Column("status", EnumText(16), nullable=False, server_default="OFFLINE"),
    Column("token_hash", String(64), nullable=False),
    Column("version", String(64)),
    Column("last_heartbeat", UTCDateTime()),
    Column("cloud_identity_id", Uuid(), ForeignKey("cloud_identities.id")),
    Column("metadata", JSONType, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime()),
    _one_of("mode", WorkerMode),
    _one_of("status", WorkerStatus),
)

vineyards = Table(
    "vineyards",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("description", Text()),
    *_timestamps(),
    UniqueConstraint("name"),
)

vines = Table(
    "vines",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column(
        "vineyard_id", Uuid(), ForeignKey("vineyards.id"), nullable=False, index=True
    ),
    Column("cloud_identity_id", Uuid(), ForeignKey("cloud_identities.id")),
    Column("project_name", String(255), nullable=False),
    Column("environment_stage", EnumText(16), nullable=False, server_default="development"),
    Column("region", String(64), nullable=False, server_default="eu-west-1"),
    Column("terraform_version", String(32)),
    Column("terraform", JSONType, nullable=False),
    Column("status", EnumText(16), nullable=False, server_default="DRAFT"),
    Column("status_message", Text()),
    *_timestamps(),
    _one_of("environment_stage", EnvironmentStage),
    _one_of("status", VineStatus),
)

vine_cluster = Table(
    "vine_cluster",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("vine_id", Uuid(), ForeignKey("vines.id", ondelete="CASCADE"), nullable=False),
    Column("cluster_version", String(32)),
    Column("instance_types", JSONType),
    Column("node_min_size", Integer()),
    Column("node_max_size", Integer()),
    Column("node_desired_size", Integer()),
    Column("cluster_name", String(255)),
    Column("cluster_endpoint", Text()),
    Column("cluster_arn", Text()),
    Column("argocd_url", Text()),
    Column("argocd_admin_password", Text()),
    *_component_status(),
    UniqueConstraint("vine_id"),  # one cluster per vine
    _one_of("status", ComponentStatus),
)

vine_databases = Table(
    "vine_databases",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("vine_id", Uuid(), ForeignKey("vines.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("engine", String(64)),
    Column("engine_version", String(64)),
    Column("min_capacity", Float()),
    Column("max_capacity", Float()),
    Column("endpoint", Text()),
    Column("reader_endpoint", Text()),
    Column("cluster_identifier", Text()),
    Column("cluster_arn", Text()),
    Column("master_credentials_secret_arn", Text()),
    Column("extra_credentials_secret_arn", Text()),
    Column("credentials_kms_key_arn", Text()),
    *_component_status(),
    UniqueConstraint("vine_id", "name"),
    _one_of("status", ComponentStatus),
)

vine_caches = Table(
    "vine_caches",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("vine_id", Uuid(), ForeignKey("vines.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("engine", String(32)),
    Column("node_type", String(64)),
    Column("num_cache_nodes", Integer()),
    Column("endpoint", Text()),
    Column("reader_endpoint", Text()),
    *_component_status(),
    UniqueConstraint("vine_id", "name"),
    _one_of("status", ComponentStatus),
)

vine_network = Table(
    "vine_network",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("vine_id", Uuid(), ForeignKey("vines.id", ondelete="CASCADE"), nullable=False),
    Column("provision_network", Boolean(), nullable=False, server_default="0"),
    Column("network_id", String(255)),
    Column("cidr_block", String(64)),
    *_component_status(),
    UniqueConstraint("vine_id"),  # at most one network per vine
    _one_of("status", ComponentStatus),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("job_type", EnumText(32), nullable=False),
    Column("status", EnumText(16), nullable=False, server_default="QUEUED"),
    Column("config_snapshot", JSONType, nullable=False),
    Column("configuration_hash", String(64)),
    Column("vine_id", Uuid(), ForeignKey("vines.id"), index=True),
    Column("vineyard_id", Uuid(), ForeignKey("vineyards.id"), index=True),
    Column("cloud_identity_id", Uuid(), ForeignKey("cloud_identities.id")),
    Column("plan_job_id", Uuid(), ForeignKey("jobs.id")),
    Column("worker_id", Uuid(), ForeignKey("workers.id"), index=True),
    Column("assigned_worker_id", Uuid(), ForeignKey("workers.id")),
    Column("attempts", Integer(), nullable=False, server_default="0"),
    Column("max_attempts", Integer(), nullable=False, server_default="3"),
    Column("cancel_requested_at", UTCDateTime()),
    Column("vine_status_before", EnumText(16)),
    Column("claimed_at", UTCDateTime()),
    Column("started_at", UTCDateTime()),
    Column("completed_at", UTCDateTime()),
    Column("error_message", Text()),
    Column("execution_metadata", JSONType, nullable=False),
    *_timestamps(),
    _one_of("job_type", JobType),
    _one_of("status", JobStatus),
    # The claim scans only queued rows, in claim order (oldest first, id as tie-break).
    Index(
        "ix_jobs_queued",
        "created_at",
        "id",
        postgresql_where=text("status = 'QUEUED'"),
        sqlite_where=text("status = 'QUEUED'"),
    ),
    # Pre-assigned queued jobs are looked up per worker first.
    Index(
        "ix_jobs_queued_assigned",
        "assigned_worker_id",
        "created_at",
        "id",
        postgresql_where=text("status = 'QUEUED' AND assigned_worker_id IS NOT NULL"),
        sqlite_where=text("status = 'QUEUED' AND assigned_worker_id IS NOT NULL"),
    ),
)

job_logs = Table(
    "job_logs",
    metadata,
    # Integer ids that grow with insertion: BIGINT identity on PostgreSQL, and on SQLite
    # ``INTEGER PRIMARY KEY AUTOINCREMENT`` so ids are never reused after deletes.
    Column("id", BigIntId, Identity(), primary_key=True),
    Column("job_id", Uuid(), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("log_chunk", Text(), nullable=False),
    Column("stream_type", EnumText(8), nullable=False, server_default="STDOUT"),
    Column("seq", BigIntId),
    Column("created_at", UTCDateTime(), nullable=False),
    # NULL seqs never collide (NULLs are distinct in unique constraints on both dialects).
    UniqueConstraint("job_id", "seq"),
    Index("ix_job_logs_job_id_id", "job_id", "id"),
    _one_of("stream_type", StreamType),
    sqlite_autoincrement=True,
)

plan_artifacts = Table(
    "plan_artifacts",
    metadata,
    Column("job_id", Uuid(), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(512), nullable=False),
    Column("size", BigIntId, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

terraform_state_locks = Table(
    "terraform_state_locks",
    metadata,
    Column("vine_id", Uuid(), ForeignKey("vines.id", ondelete="CASCADE"), primary_key=True),
    Column("lock_id", String(255), nullable=False),
    Column("info", JSONType, nullable=False),
    Column("worker_id", Uuid(), ForeignKey("workers.id")),
    Column("created_at", UTCDateTime(), nullable=False),
)

COMPONENT_TABLES = {
    "cluster": vine_cluster,
    "databases": vine_databases,
    "caches": vine_caches,
    "network": vine_network,
}

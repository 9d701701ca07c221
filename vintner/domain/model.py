"""Domain entities (domain.md), as plain dataclasses.

Repositories return these, never ORM rows. They carry no behaviour beyond small derived
properties; the rules that change them live in the other ``vintner.domain`` modules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

JsonObject = dict[str, Any]


def utcnow() -> datetime:
    """The server's clock. Every time decision uses this (or a value passed down from it)."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class WorkerMode(StrEnum):
    SELF_HOSTED = "self-hosted"
    CLOUD_HOSTED = "cloud-hosted"


class WorkerStatus(StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    DRAINING = "DRAINING"


class Provider(StrEnum):
    AWS = "aws"
    GCP = "gcp"
    AZURE = "azure"


class EnvironmentStage(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class VineStatus(StrEnum):
    DRAFT = "DRAFT"
    QUEUED = "QUEUED"
    PROVISIONING = "PROVISIONING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    DESTROYING = "DESTROYING"
    DESTROYED = "DESTROYED"


class ComponentStatus(StrEnum):
    PENDING = "PENDING"
    CREATING = "CREATING"
    ACTIVE = "ACTIVE"
    UPDATING = "UPDATING"
    FAILED = "FAILED"
    DESTROYING = "DESTROYING"
    DESTROYED = "DESTROYED"


class JobType(StrEnum):
    PLAN = "PLAN"
    DEPLOY = "DEPLOY"
    DESTROY = "DESTROY"
    CONNECTION_TEST = "CONNECTION_TEST"
    FETCH_RESOURCES = "FETCH_RESOURCES"
    DEPLOY_WORKER = "DEPLOY_WORKER"
    UPDATE_WORKER = "UPDATE_WORKER"
    DESTROY_WORKER = "DESTROY_WORKER"

    @property
    def needs_vine(self) -> bool:
        return self in VINE_JOB_TYPES

    @property
    def rerunnable(self) -> bool:
        """May be re-run from scratch after its worker was lost mid-run (no apply inside)."""
        return self in RERUNNABLE_JOB_TYPES


VINE_JOB_TYPES = frozenset({JobType.PLAN, JobType.DEPLOY, JobType.DESTROY})
RERUNNABLE_JOB_TYPES = frozenset({JobType.PLAN, JobType.CONNECTION_TEST, JobType.FETCH_RESOURCES})


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    CLAIMED = "CLAIMED"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def held(self) -> bool:
        """A worker holds the job (it was claimed and has not ended)."""
        return self in (JobStatus.CLAIMED, JobStatus.PROCESSING)


TERMINAL_STATUSES = frozenset({JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.CANCELLED})
UNFINISHED_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.CLAIMED, JobStatus.PROCESSING})


class StreamType(StrEnum):
    STDOUT = "STDOUT"
    STDERR = "STDERR"
    SYSTEM = "SYSTEM"


@dataclass
class Worker:
    id: uuid.UUID
    name: str
    mode: WorkerMode
    token_hash: str
    status: WorkerStatus = WorkerStatus.OFFLINE
    version: str | None = None
    last_heartbeat: datetime | None = None
    cloud_identity_id: uuid.UUID | None = None
    metadata: JsonObject = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    deleted_at: datetime | None = None


@dataclass
class CloudIdentity:
    id: uuid.UUID
    provider: Provider
    name: str
    credentials: JsonObject
    is_verified: bool = False
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class Vineyard:
    id: uuid.UUID
    name: str
    description: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class VineCluster:
    id: uuid.UUID
    cluster_version: str | None = None
    instance_types: list[str] | None = None
    node_min_size: int | None = None
    node_max_size: int | None = None
    node_desired_size: int | None = None
    # filled by finalizeDeployment
    cluster_name: str | None = None
    cluster_endpoint: str | None = None
    cluster_arn: str | None = None
    argocd_url: str | None = None
    argocd_admin_password: str | None = None
    status: ComponentStatus = ComponentStatus.PENDING
    status_message: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class VineDatabase:
    id: uuid.UUID
    name: str
    engine: str | None = None
    engine_version: str | None = None
    min_capacity: float | None = None
    max_capacity: float | None = None
    # filled by finalizeDeployment
    endpoint: str | None = None
    reader_endpoint: str | None = None
    cluster_identifier: str | None = None
    cluster_arn: str | None = None
    master_credentials_secret_arn: str | None = None
    extra_credentials_secret_arn: str | None = None
    credentials_kms_key_arn: str | None = None
    status: ComponentStatus = ComponentStatus.PENDING
    status_message: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class VineCache:
    id: uuid.UUID
    name: str
    engine: str | None = None
    node_type: str | None = None
    num_cache_nodes: int | None = None
    # filled by finalizeDeployment
    endpoint: str | None = None
    reader_endpoint: str | None = None
    status: ComponentStatus = ComponentStatus.PENDING
    status_message: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class VineNetwork:
    id: uuid.UUID
    provision_network: bool = False
    network_id: str | None = None
    cidr_block: str | None = None
    status: ComponentStatus = ComponentStatus.PENDING
    status_message: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


# Which component columns are configuration (go into config_snapshot) -- the rest is status or
# filled by finalize.
CLUSTER_CONFIG_FIELDS = (
    "cluster_version", "instance_types", "node_min_size", "node_max_size", "node_desired_size",
)
DATABASE_CONFIG_FIELDS = ("name", "engine", "engine_version", "min_capacity", "max_capacity")
CACHE_CONFIG_FIELDS = ("name", "engine", "node_type", "num_cache_nodes")
NETWORK_CONFIG_FIELDS = ("provision_network", "network_id", "cidr_block")


@dataclass
class Vine:
    """A vine with its components. Repositories load and save it as one aggregate."""

    id: uuid.UUID
    vineyard_id: uuid.UUID
    project_name: str
    cloud_identity_id: uuid.UUID | None = None
    environment_stage: EnvironmentStage = EnvironmentStage.DEVELOPMENT
    region: str = "eu-west-1"
    terraform_version: str | None = None
    terraform: JsonObject = field(default_factory=dict)
    status: VineStatus = VineStatus.DRAFT
    status_message: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    cluster: VineCluster | None = None
    databases: list[VineDatabase] = field(default_factory=list)
    caches: list[VineCache] = field(default_factory=list)
    network: VineNetwork | None = None

    def components(self) -> list[VineCluster | VineDatabase | VineCache]:
        """The components whose status follows deployments (network has no outputs yet)."""
        items: list[VineCluster | VineDatabase | VineCache] = []
        if self.cluster is not None:
            items.append(self.cluster)
        items.extend(self.databases)
        items.extend(self.caches)
        return items


@dataclass
class Job:
    id: uuid.UUID
    job_type: JobType
    status: JobStatus = JobStatus.QUEUED
    config_snapshot: JsonObject = field(default_factory=dict)
    configuration_hash: str | None = None
    vine_id: uuid.UUID | None = None
    vineyard_id: uuid.UUID | None = None
    cloud_identity_id: uuid.UUID | None = None
    plan_job_id: uuid.UUID | None = None
    worker_id: uuid.UUID | None = None
    assigned_worker_id: uuid.UUID | None = None
    attempts: int = 0
    max_attempts: int = 3
    cancel_requested_at: datetime | None = None
    vine_status_before: VineStatus | None = None
    claimed_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None
    execution_metadata: JsonObject = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_requested_at is not None


@dataclass
class LogChunk:
    id: int
    job_id: uuid.UUID
    log_chunk: str
    stream_type: StreamType
    seq: int | None
    created_at: datetime


@dataclass
class PlanArtifact:
    job_id: uuid.UUID
    key: str
    size: int
    sha256: str
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class StateLock:
    """Terraform http-backend lock on one vine's state (the lock info JSON Terraform sent)."""

    vine_id: uuid.UUID
    lock_id: str
    info: JsonObject
    worker_id: uuid.UUID | None
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class ClaimedJob:
    """What a successful claim returns: the job and its cloud identity (or None)."""

    job: Job
    cloud_identity: CloudIdentity | None

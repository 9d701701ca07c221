"""Initial schema: every table of domain.md, the terraform state locks, and (PostgreSQL only)
the claim_next_job() function.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Self-contained on purpose (no imports from the application): a migration must keep producing
the same schema when the code around it changes later. The column types are the plain
equivalents of backends.sql.types (UTCDateTime and EnumText only add Python-side conversion).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The claim (worker-api.md "Claiming a job"), one atomic step per worker call:
# 1. the claim counts as a heartbeat: last_heartbeat = p_now, OFFLINE -> ONLINE; an unknown or
#    deleted worker changes nothing and gets nothing, a DRAINING one gets nothing;
# 2. the oldest QUEUED job pre-assigned to the worker, else the oldest unassigned QUEUED job
#    (with the worker's cloud identity when it is bound to one); oldest = created_at, then id.
#    Each pass is a CTE that picks the row FOR NO KEY UPDATE SKIP LOCKED and an UPDATE ... FROM
#    it RETURNING the row. Never "WHERE id IN (SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED)",
#    which the planner may turn into a join that updates more than one row. The two passes
#    each use a partial index in claim order (ix_jobs_queued_assigned, ix_jobs_queued), so a
#    claim reads a handful of index entries instead of sorting every queued job.
#    NO KEY UPDATE: a concurrent insert of a child row (a log chunk) holds KEY SHARE on the job,
#    which conflicts with FOR UPDATE (and SKIP LOCKED would then skip the job) but not with this.
CLAIM_NEXT_JOB = """
CREATE OR REPLACE FUNCTION claim_next_job(p_worker_id uuid, p_now timestamptz DEFAULT now())
RETURNS SETOF jobs
LANGUAGE plpgsql
AS $$
DECLARE
    v_status text;
    v_identity uuid;
BEGIN
    UPDATE workers
       SET last_heartbeat = p_now,
           status = CASE WHEN status = 'OFFLINE' THEN 'ONLINE' ELSE status END
     WHERE id = p_worker_id AND deleted_at IS NULL
    RETURNING status, cloud_identity_id INTO v_status, v_identity;
    IF NOT FOUND OR v_status = 'DRAINING' THEN
        RETURN;
    END IF;

    RETURN QUERY
    WITH next_job AS (
        SELECT j.id
          FROM jobs AS j
         WHERE j.status = 'QUEUED'
           AND j.assigned_worker_id = p_worker_id
         ORDER BY j.created_at, j.id
         LIMIT 1
         FOR NO KEY UPDATE SKIP LOCKED
    )
    UPDATE jobs
       SET status = 'CLAIMED', worker_id = p_worker_id, claimed_at = p_now,
           attempts = jobs.attempts + 1, updated_at = p_now
      FROM next_job
     WHERE jobs.id = next_job.id
    RETURNING jobs.*;
    IF FOUND THEN
        RETURN;
    END IF;

    RETURN QUERY
    WITH next_job AS (
        SELECT j.id
          FROM jobs AS j
         WHERE j.status = 'QUEUED'
           AND j.assigned_worker_id IS NULL
           AND (v_identity IS NULL OR j.cloud_identity_id = v_identity)
         ORDER BY j.created_at, j.id
         LIMIT 1
         FOR NO KEY UPDATE SKIP LOCKED
    )
    UPDATE jobs
       SET status = 'CLAIMED', worker_id = p_worker_id, claimed_at = p_now,
           attempts = jobs.attempts + 1, updated_at = p_now
      FROM next_job
     WHERE jobs.id = next_job.id
    RETURNING jobs.*;
END;
$$;
"""


def upgrade() -> None:
    op.create_table('cloud_identities',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('credentials', JSON, nullable=False),
    sa.Column('is_verified', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("provider IN ('aws', 'gcp', 'azure')", name=op.f('ck_cloud_identities_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cloud_identities'))
    )
    op.create_table('vineyards',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vineyards')),
    sa.UniqueConstraint('name', name=op.f('uq_vineyards_name'))
    )
    op.create_table('vines',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('vineyard_id', sa.Uuid(), nullable=False),
    sa.Column('cloud_identity_id', sa.Uuid(), nullable=True),
    sa.Column('project_name', sa.String(length=255), nullable=False),
    sa.Column('environment_stage', sa.String(length=16), server_default='development', nullable=False),
    sa.Column('region', sa.String(length=64), server_default='eu-west-1', nullable=False),
    sa.Column('terraform_version', sa.String(length=32), nullable=True),
    sa.Column('terraform', JSON, nullable=False),
    sa.Column('status', sa.String(length=16), server_default='DRAFT', nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("environment_stage IN ('development', 'staging', 'production')", name=op.f('ck_vines_environment_stage')),
    sa.CheckConstraint("status IN ('DRAFT', 'QUEUED', 'PROVISIONING', 'ACTIVE', 'FAILED', 'DESTROYING', 'DESTROYED')", name=op.f('ck_vines_status')),
    sa.ForeignKeyConstraint(['cloud_identity_id'], ['cloud_identities.id'], name=op.f('fk_vines_cloud_identity_id_cloud_identities')),
    sa.ForeignKeyConstraint(['vineyard_id'], ['vineyards.id'], name=op.f('fk_vines_vineyard_id_vineyards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vines'))
    )
    op.create_index(op.f('ix_vines_vineyard_id'), 'vines', ['vineyard_id'], unique=False)

    op.create_table('workers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='OFFLINE', nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=True),
    sa.Column('last_heartbeat', TIMESTAMP, nullable=True),
    sa.Column('cloud_identity_id', sa.Uuid(), nullable=True),
    sa.Column('metadata', JSON, nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('deleted_at', TIMESTAMP, nullable=True),
    sa.CheckConstraint("mode IN ('self-hosted', 'cloud-hosted')", name=op.f('ck_workers_mode')),
    sa.CheckConstraint("status IN ('ONLINE', 'OFFLINE', 'DRAINING')", name=op.f('ck_workers_status')),
    sa.ForeignKeyConstraint(['cloud_identity_id'], ['cloud_identities.id'], name=op.f('fk_workers_cloud_identity_id_cloud_identities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workers'))
    )
    op.create_table('jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='QUEUED', nullable=False),
    sa.Column('config_snapshot', JSON, nullable=False),
    sa.Column('configuration_hash', sa.String(length=64), nullable=True),
    sa.Column('vine_id', sa.Uuid(), nullable=True),
    sa.Column('vineyard_id', sa.Uuid(), nullable=True),
    sa.Column('cloud_identity_id', sa.Uuid(), nullable=True),
    sa.Column('plan_job_id', sa.Uuid(), nullable=True),
    sa.Column('worker_id', sa.Uuid(), nullable=True),
    sa.Column('assigned_worker_id', sa.Uuid(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default='3', nullable=False),
    sa.Column('cancel_requested_at', TIMESTAMP, nullable=True),
    sa.Column('vine_status_before', sa.String(length=16), nullable=True),
    sa.Column('claimed_at', TIMESTAMP, nullable=True),
    sa.Column('started_at', TIMESTAMP, nullable=True),
    sa.Column('completed_at', TIMESTAMP, nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('execution_metadata', JSON, nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("job_type IN ('PLAN', 'DEPLOY', 'DESTROY', 'CONNECTION_TEST', 'FETCH_RESOURCES', 'DEPLOY_WORKER', 'UPDATE_WORKER', 'DESTROY_WORKER')", name=op.f('ck_jobs_job_type')),
    sa.CheckConstraint("status IN ('QUEUED', 'CLAIMED', 'PROCESSING', 'SUCCESS', 'FAILED', 'CANCELLED')", name=op.f('ck_jobs_status')),
    sa.ForeignKeyConstraint(['assigned_worker_id'], ['workers.id'], name=op.f('fk_jobs_assigned_worker_id_workers')),
    sa.ForeignKeyConstraint(['cloud_identity_id'], ['cloud_identities.id'], name=op.f('fk_jobs_cloud_identity_id_cloud_identities')),
    sa.ForeignKeyConstraint(['plan_job_id'], ['jobs.id'], name=op.f('fk_jobs_plan_job_id_jobs')),
    sa.ForeignKeyConstraint(['vine_id'], ['vines.id'], name=op.f('fk_jobs_vine_id_vines')),
    sa.ForeignKeyConstraint(['vineyard_id'], ['vineyards.id'], name=op.f('fk_jobs_vineyard_id_vineyards')),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_jobs_worker_id_workers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    op.create_index('ix_jobs_queued', 'jobs', ['created_at', 'id'], unique=False, postgresql_where=sa.text("status = 'QUEUED'"), sqlite_where=sa.text("status = 'QUEUED'"))
    op.create_index('ix_jobs_queued_assigned', 'jobs', ['assigned_worker_id', 'created_at', 'id'], unique=False, postgresql_where=sa.text("status = 'QUEUED' AND assigned_worker_id IS NOT NULL"), sqlite_where=sa.text("status = 'QUEUED' AND assigned_worker_id IS NOT NULL"))
    op.create_index(op.f('ix_jobs_vine_id'), 'jobs', ['vine_id'], unique=False)
    op.create_index(op.f('ix_jobs_vineyard_id'), 'jobs', ['vineyard_id'], unique=False)
    op.create_index(op.f('ix_jobs_worker_id'), 'jobs', ['worker_id'], unique=False)

    op.create_table('terraform_state_locks',
    sa.Column('vine_id', sa.Uuid(), nullable=False),
    sa.Column('lock_id', sa.String(length=255), nullable=False),
    sa.Column('info', JSON, nullable=False),
    sa.Column('worker_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['vine_id'], ['vines.id'], name=op.f('fk_terraform_state_locks_vine_id_vines'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_terraform_state_locks_worker_id_workers')),
    sa.PrimaryKeyConstraint('vine_id', name=op.f('pk_terraform_state_locks'))
    )
    op.create_table('vine_caches',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('vine_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('engine', sa.String(length=32), nullable=True),
    sa.Column('node_type', sa.String(length=64), nullable=True),
    sa.Column('num_cache_nodes', sa.Integer(), nullable=True),
    sa.Column('endpoint', sa.Text(), nullable=True),
    sa.Column('reader_endpoint', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='PENDING', nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("status IN ('PENDING', 'CREATING', 'ACTIVE', 'UPDATING', 'FAILED', 'DESTROYING', 'DESTROYED')", name=op.f('ck_vine_caches_status')),
    sa.ForeignKeyConstraint(['vine_id'], ['vines.id'], name=op.f('fk_vine_caches_vine_id_vines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vine_caches')),
    sa.UniqueConstraint('vine_id', 'name', name=op.f('uq_vine_caches_vine_id_name'))
    )
    op.create_table('vine_cluster',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('vine_id', sa.Uuid(), nullable=False),
    sa.Column('cluster_version', sa.String(length=32), nullable=True),
    sa.Column('instance_types', JSON, nullable=True),
    sa.Column('node_min_size', sa.Integer(), nullable=True),
    sa.Column('node_max_size', sa.Integer(), nullable=True),
    sa.Column('node_desired_size', sa.Integer(), nullable=True),
    sa.Column('cluster_name', sa.String(length=255), nullable=True),
    sa.Column('cluster_endpoint', sa.Text(), nullable=True),
    sa.Column('cluster_arn', sa.Text(), nullable=True),
    sa.Column('argocd_url', sa.Text(), nullable=True),
    sa.Column('argocd_admin_password', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='PENDING', nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("status IN ('PENDING', 'CREATING', 'ACTIVE', 'UPDATING', 'FAILED', 'DESTROYING', 'DESTROYED')", name=op.f('ck_vine_cluster_status')),
    sa.ForeignKeyConstraint(['vine_id'], ['vines.id'], name=op.f('fk_vine_cluster_vine_id_vines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vine_cluster')),
    sa.UniqueConstraint('vine_id', name=op.f('uq_vine_cluster_vine_id'))
    )
    op.create_table('vine_databases',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('vine_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('engine', sa.String(length=64), nullable=True),
    sa.Column('engine_version', sa.String(length=64), nullable=True),
    sa.Column('min_capacity', sa.Float(), nullable=True),
    sa.Column('max_capacity', sa.Float(), nullable=True),
    sa.Column('endpoint', sa.Text(), nullable=True),
    sa.Column('reader_endpoint', sa.Text(), nullable=True),
    sa.Column('cluster_identifier', sa.Text(), nullable=True),
    sa.Column('cluster_arn', sa.Text(), nullable=True),
    sa.Column('master_credentials_secret_arn', sa.Text(), nullable=True),
    sa.Column('extra_credentials_secret_arn', sa.Text(), nullable=True),
    sa.Column('credentials_kms_key_arn', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='PENDING', nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("status IN ('PENDING', 'CREATING', 'ACTIVE', 'UPDATING', 'FAILED', 'DESTROYING', 'DESTROYED')", name=op.f('ck_vine_databases_status')),
    sa.ForeignKeyConstraint(['vine_id'], ['vines.id'], name=op.f('fk_vine_databases_vine_id_vines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vine_databases')),
    sa.UniqueConstraint('vine_id', 'name', name=op.f('uq_vine_databases_vine_id_name'))
    )
    op.create_table('vine_network',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('vine_id', sa.Uuid(), nullable=False),
    sa.Column('provision_network', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('network_id', sa.String(length=255), nullable=True),
    sa.Column('cidr_block', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='PENDING', nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("status IN ('PENDING', 'CREATING', 'ACTIVE', 'UPDATING', 'FAILED', 'DESTROYING', 'DESTROYED')", name=op.f('ck_vine_network_status')),
    sa.ForeignKeyConstraint(['vine_id'], ['vines.id'], name=op.f('fk_vine_network_vine_id_vines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vine_network')),
    sa.UniqueConstraint('vine_id', name=op.f('uq_vine_network_vine_id'))
    )
    op.create_table('job_logs',
    sa.Column('id', BIGINT_ID, sa.Identity(always=False), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('log_chunk', sa.Text(), nullable=False),
    sa.Column('stream_type', sa.String(length=8), server_default='STDOUT', nullable=False),
    sa.Column('seq', BIGINT_ID, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("stream_type IN ('STDOUT', 'STDERR', 'SYSTEM')", name=op.f('ck_job_logs_stream_type')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_logs_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_logs')),
    sa.UniqueConstraint('job_id', 'seq', name=op.f('uq_job_logs_job_id_seq')),
    sqlite_autoincrement=True
    )
    op.create_index('ix_job_logs_job_id_id', 'job_logs', ['job_id', 'id'], unique=False)

    op.create_table('plan_artifacts',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('size', BIGINT_ID, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_plan_artifacts_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_plan_artifacts'))
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLAIM_NEXT_JOB)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS claim_next_job(uuid, timestamptz)")
    op.drop_table('plan_artifacts')
    op.drop_index('ix_job_logs_job_id_id', table_name='job_logs')

    op.drop_table('job_logs')
    op.drop_table('vine_network')
    op.drop_table('vine_databases')
    op.drop_table('vine_cluster')
    op.drop_table('vine_caches')
    op.drop_table('terraform_state_locks')
    op.drop_index(op.f('ix_jobs_worker_id'), table_name='jobs')
    op.drop_index(op.f('ix_jobs_vineyard_id'), table_name='jobs')
    op.drop_index(op.f('ix_jobs_vine_id'), table_name='jobs')
    op.drop_index('ix_jobs_queued_assigned', table_name='jobs', postgresql_where=sa.text("status = 'QUEUED' AND assigned_worker_id IS NOT NULL"), sqlite_where=sa.text("status = 'QUEUED' AND assigned_worker_id IS NOT NULL"))
    op.drop_index('ix_jobs_queued', table_name='jobs', postgresql_where=sa.text("status = 'QUEUED'"), sqlite_where=sa.text("status = 'QUEUED'"))

    op.drop_table('jobs')
    op.drop_table('workers')
    op.drop_index(op.f('ix_vines_vineyard_id'), table_name='vines')

    op.drop_table('vines')
    op.drop_table('vineyards')
    op.drop_table('cloud_identities')

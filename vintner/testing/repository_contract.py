"""The repository contract suite: what every :class:`vintner.ports.Repository` must do.

A backend's test subclasses :class:`RepositoryContract` and provides a ``repo`` fixture that
returns a ready (migrated, empty) repository::

    from vintner.testing.repository_contract import RepositoryContract

    class TestMyRepository(RepositoryContract):
        @pytest.fixture
        def repo(self, tmp_path):
            repo = MyRepository.from_url(..., {})
            repo.migrate()
            yield repo
            repo.close()

The built-in SQL backend (SQLite and PostgreSQL) and the in-memory fake
(:mod:`vintner.testing.fake_repository`) pass it unchanged. Only the port is used, so the
suite says nothing about how a backend stores things — only what it returns.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from vintner.domain.model import (
    ClaimedJob,
    CloudIdentity,
    ComponentStatus,
    EnvironmentStage,
    Job,
    JobStatus,
    JobType,
    PlanArtifact,
    Provider,
    StateLock,
    StreamType,
    Vine,
    VineCache,
    VineCluster,
    VineDatabase,
    VineNetwork,
    VineStatus,
    Vineyard,
    Worker,
    WorkerMode,
    WorkerStatus,
)
from vintner.errors import DuplicateName
from vintner.ports.notifier import JOBS_CHANNEL, Notifier, logs_channel
from vintner.ports.repository import ANY, JobFilter, Page, Repository

#: A fixed, microsecond-precise origin for test timestamps (backends must keep microseconds).
T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_worker(**kw: Any) -> Worker:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": "worker",
        "mode": WorkerMode.SELF_HOSTED,
        "token_hash": "a" * 64,
        "created_at": T0,
    }
    values.update(kw)
    return Worker(**values)


def new_identity(**kw: Any) -> CloudIdentity:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "provider": Provider.AWS,
        "name": "prod",
        "credentials": {
            "role_arn": "arn:aws:iam::123456789012:role/X",
            "external_id": str(uuid.uuid4()),
            "account_id": "123456789012",
        },
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(kw)
    return CloudIdentity(**values)


def new_vineyard(**kw: Any) -> Vineyard:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": f"vineyard-{uuid.uuid4().hex[:8]}",
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(kw)
    return Vineyard(**values)


def new_vine(vineyard_id: uuid.UUID, **kw: Any) -> Vine:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "vineyard_id": vineyard_id,
        "project_name": "shop",
        "environment_stage": EnvironmentStage.STAGING,
        "region": "eu-central-1",
        "terraform_version": "1.9.0",
        "terraform": {"module": "example", "variables": {"size": 3, "tags": {"a": "b"}}},
        "created_at": T0,
        "updated_at": T0,
        "cluster": VineCluster(
            id=uuid.uuid4(),
            cluster_version="1.30",
            instance_types=["t3.large", "t3.xlarge"],
            node_min_size=1,
            node_max_size=5,
            node_desired_size=2,
            created_at=T0,
            updated_at=T0,
        ),
        "databases": [
            VineDatabase(
                id=uuid.uuid4(), name="main", engine="aurora-postgresql",
                engine_version="16.1", min_capacity=0.5, max_capacity=4.0,
                created_at=T0, updated_at=T0,
            ),
            VineDatabase(
                id=uuid.uuid4(), name="reports", engine="aurora-postgresql",
                created_at=T0, updated_at=T0,
            ),
        ],
        "caches": [
            VineCache(
                id=uuid.uuid4(), name="sessions", engine="redis", node_type="cache.t3.micro",
                num_cache_nodes=2, created_at=T0, updated_at=T0,
            )
        ],
        "network": VineNetwork(
            id=uuid.uuid4(), provision_network=True, cidr_block="10.0.0.0/16",
            created_at=T0, updated_at=T0,
        ),
    }
    values.update(kw)
    return Vine(**values)


def new_job(**kw: Any) -> Job:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "job_type": JobType.CONNECTION_TEST,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(kw)
    return Job(**values)


def _aware_utc(value: datetime | None) -> None:
    assert value is None or (value.tzinfo is not None and value.utcoffset() == timedelta(0)), (
        f"timestamps must come back as aware UTC datetimes, got {value!r}"
    )


class RepositoryContract:
    """Subclass it and provide a ``repo`` fixture (see the module docstring)."""

    @pytest.fixture
    def repo(self) -> Repository:  # pragma: no cover - the subclass overrides it
        raise NotImplementedError("provide a `repo` fixture returning a migrated repository")

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def add(repo: Repository, *objects: Any) -> None:
        with repo.transaction() as tx:
            for obj in objects:
                if isinstance(obj, Worker):
                    tx.add_worker(obj)
                elif isinstance(obj, CloudIdentity):
                    tx.add_cloud_identity(obj)
                elif isinstance(obj, Vineyard):
                    tx.add_vineyard(obj)
                elif isinstance(obj, Vine):
                    tx.add_vine(obj)
                elif isinstance(obj, Job):
                    tx.add_job(obj)
                else:  # pragma: no cover
                    raise TypeError(obj)

    @staticmethod
    def job(repo: Repository, job_id: uuid.UUID) -> Job:
        with repo.transaction() as tx:
            job = tx.get_job(job_id)
        assert job is not None
        return job

    @staticmethod
    def worker(repo: Repository, worker_id: uuid.UUID) -> Worker:
        with repo.transaction() as tx:
            worker = tx.get_worker(worker_id, include_deleted=True)
        assert worker is not None
        return worker

    def vine_with_parents(self, repo: Repository, **kw: Any) -> Vine:
        vineyard = new_vineyard()
        vine = new_vine(vineyard.id, **kw)
        self.add(repo, vineyard, vine)
        return vine

    # == transactions =============================================================================
    def test_transaction_commits_on_normal_exit(self, repo: Repository) -> None:
        vineyard = new_vineyard()
        with repo.transaction() as tx:
            tx.add_vineyard(vineyard)
        with repo.transaction() as tx:
            assert tx.get_vineyard(vineyard.id) == vineyard

    def test_transaction_rolls_back_on_exception(self, repo: Repository) -> None:
        vineyard = new_vineyard()
        with pytest.raises(RuntimeError), repo.transaction() as tx:
            tx.add_vineyard(vineyard)
            raise RuntimeError("boom")
        with repo.transaction() as tx:
            assert tx.get_vineyard(vineyard.id) is None

    def test_ping(self, repo: Repository) -> None:
        repo.ping()

    def test_migrate_is_idempotent(self, repo: Repository) -> None:
        repo.migrate()
        repo.migrate()
        vineyard = new_vineyard()
        self.add(repo, vineyard)

    def test_schemes_declared(self, repo: Repository) -> None:
        assert isinstance(type(repo).schemes, tuple)

    def test_notifier_wakes_this_process(self, repo: Repository) -> None:
        notifier = repo.create_notifier()
        try:
            assert isinstance(notifier, Notifier)
            job_id = uuid.uuid4()
            jobs_pos = notifier.position(JOBS_CHANNEL)
            logs_pos = notifier.position(logs_channel(job_id))
            notifier.notify_job_enqueued()
            notifier.notify_logs(job_id)
            assert notifier.wait(JOBS_CHANNEL, 5, after=jobs_pos) > jobs_pos
            assert notifier.wait(logs_channel(job_id), 5, after=logs_pos) > logs_pos
        finally:
            notifier.close()

    # == workers ==================================================================================
    def test_worker_round_trip(self, repo: Repository) -> None:
        identity = new_identity()
        worker = new_worker(
            name="eu-west-1-tendril",
            mode=WorkerMode.CLOUD_HOSTED,
            status=WorkerStatus.ONLINE,
            version="0.1.0",
            last_heartbeat=at(5),
            cloud_identity_id=identity.id,
            metadata={"deploy_config": {"region": "eu-west-1"}, "n": 1, "list": [1, "x", None]},
        )
        self.add(repo, identity, worker)
        got = self.worker(repo, worker.id)
        assert got == worker
        _aware_utc(got.created_at)
        _aware_utc(got.last_heartbeat)
        assert isinstance(got.mode, WorkerMode) and isinstance(got.status, WorkerStatus)

    def test_worker_defaults_round_trip(self, repo: Repository) -> None:
        worker = new_worker()
        self.add(repo, worker)
        got = self.worker(repo, worker.id)
        assert got.status == WorkerStatus.OFFLINE
        assert got.metadata == {} and got.last_heartbeat is None and got.deleted_at is None

    def test_timestamps_with_other_offsets_come_back_as_utc(self, repo: Repository) -> None:
        plus_two = timezone(timedelta(hours=2))
        local = datetime(2026, 3, 1, 14, 30, 0, 5, tzinfo=plus_two)
        worker = new_worker(created_at=local, last_heartbeat=local)
        self.add(repo, worker)
        got = self.worker(repo, worker.id)
        assert got.created_at == local
        assert got.created_at.utcoffset() == timedelta(0)
        assert got.created_at.hour == 12

    def test_get_unknown_worker(self, repo: Repository) -> None:
        with repo.transaction() as tx:
            assert tx.get_worker(uuid.uuid4()) is None
            assert tx.get_worker(uuid.uuid4(), include_deleted=True) is None

    def test_deleted_worker_hidden_unless_asked(self, repo: Repository) -> None:
        worker = new_worker(deleted_at=at(1))
        self.add(repo, worker)
        with repo.transaction() as tx:
            assert tx.get_worker(worker.id) is None
            got = tx.get_worker(worker.id, include_deleted=True)
        assert got is not None and got.deleted_at == at(1)

    def test_list_workers_oldest_first_without_deleted(self, repo: Repository) -> None:
        w1, w2, w3 = (new_worker(name=f"w{i}", created_at=at(i)) for i in (3, 1, 2))
        gone = new_worker(name="gone", created_at=at(0), deleted_at=at(4))
        self.add(repo, w1, w2, w3, gone)
        with repo.transaction() as tx:
            items, total = tx.list_workers(Page(limit=10, offset=0))
            page2, total2 = tx.list_workers(Page(limit=2, offset=2))
        assert [w.name for w in items] == ["w1", "w2", "w3"]
        assert total == 3 and total2 == 3
        assert [w.name for w in page2] == ["w3"]

    def test_save_worker_writes_mutable_fields(self, repo: Repository) -> None:
        identity = new_identity()
        worker = new_worker()
        self.add(repo, identity, worker)
        worker.status = WorkerStatus.DRAINING
        worker.version = "0.2.0"
        worker.last_heartbeat = at(30)
        worker.metadata = {"k": "v"}
        worker.token_hash = "b" * 64
        worker.name = "renamed"
        worker.cloud_identity_id = identity.id
        with repo.transaction() as tx:
            tx.save_worker(worker)
        assert self.worker(repo, worker.id) == worker
        worker.deleted_at = at(40)
        with repo.transaction() as tx:
            tx.save_worker(worker)
            assert tx.get_worker(worker.id) is None

    def test_mark_workers_offline(self, repo: Repository) -> None:
        stale_online = new_worker(status=WorkerStatus.ONLINE, last_heartbeat=at(0))
        stale_draining = new_worker(status=WorkerStatus.DRAINING, last_heartbeat=at(0))
        never = new_worker(status=WorkerStatus.ONLINE, last_heartbeat=None)
        fresh = new_worker(status=WorkerStatus.ONLINE, last_heartbeat=at(100))
        exactly = new_worker(status=WorkerStatus.ONLINE, last_heartbeat=at(60))
        offline = new_worker(status=WorkerStatus.OFFLINE, last_heartbeat=at(0))
        deleted = new_worker(status=WorkerStatus.ONLINE, last_heartbeat=at(0), deleted_at=at(1))
        self.add(repo, stale_online, stale_draining, never, fresh, exactly, offline, deleted)
        with repo.transaction() as tx:
            marked = tx.mark_workers_offline(at(60))
        assert set(marked) == {stale_online.id, stale_draining.id, never.id}
        assert self.worker(repo, stale_online.id).status == WorkerStatus.OFFLINE
        assert self.worker(repo, stale_draining.id).status == WorkerStatus.OFFLINE
        assert self.worker(repo, fresh.id).status == WorkerStatus.ONLINE
        assert self.worker(repo, exactly.id).status == WorkerStatus.ONLINE
        assert self.worker(repo, deleted.id).status == WorkerStatus.ONLINE
        with repo.transaction() as tx:
            assert tx.mark_workers_offline(at(60)) == []

    # == cloud identities =========================================================================
    def test_cloud_identity_round_trip_list_and_save(self, repo: Repository) -> None:
        a = new_identity(name="a", created_at=at(2), updated_at=at(2))
        b = new_identity(
            name="b",
            provider=Provider.GCP,
            credentials={"project_id": "p", "wif_config": {"type": "external_account"}},
            created_at=at(1),
            updated_at=at(1),
        )
        self.add(repo, a, b)
        with repo.transaction() as tx:
            assert tx.get_cloud_identity(a.id) == a
            assert tx.get_cloud_identity(uuid.uuid4()) is None
            items, total = tx.list_cloud_identities(Page(limit=1, offset=0))
        assert total == 2 and [i.name for i in items] == ["b"]
        assert isinstance(items[0].provider, Provider)
        a.is_verified = True
        a.name = "a2"
        a.credentials = {**a.credentials, "note": "x"}
        a.updated_at = at(10)
        with repo.transaction() as tx:
            tx.save_cloud_identity(a)
        with repo.transaction() as tx:
            assert tx.get_cloud_identity(a.id) == a

    # == vineyards ================================================================================
    def test_vineyard_round_trip_and_list(self, repo: Repository) -> None:
        a = new_vineyard(name="a", description="first", created_at=at(2))
        b = new_vineyard(name="b", created_at=at(1))
        c = new_vineyard(name="c", created_at=at(3))
        self.add(repo, a, b, c)
        with repo.transaction() as tx:
            assert tx.get_vineyard(a.id) == a
            assert tx.get_vineyard(uuid.uuid4()) is None
            items, total = tx.list_vineyards(Page(limit=2, offset=1))
        assert total == 3 and [v.name for v in items] == ["a", "c"]

    def test_duplicate_vineyard_name(self, repo: Repository) -> None:
        self.add(repo, new_vineyard(name="prod"))
        with pytest.raises(DuplicateName) as info, repo.transaction() as tx:
            tx.add_vineyard(new_vineyard(name="prod"))
        assert "name" in info.value.message.lower()

    def test_duplicate_name_leaves_transaction_usable(self, repo: Repository) -> None:
        self.add(repo, new_vineyard(name="prod"))
        other = new_vineyard(name="staging")
        with repo.transaction() as tx:
            with pytest.raises(DuplicateName):
                tx.add_vineyard(new_vineyard(name="prod"))
            tx.add_vineyard(other)
        with repo.transaction() as tx:
            assert tx.get_vineyard(other.id) == other
            assert tx.list_vineyards(Page())[1] == 2

    # == vines ====================================================================================
    def test_vine_aggregate_round_trip(self, repo: Repository) -> None:
        identity = new_identity()
        self.add(repo, identity)
        vine = self.vine_with_parents(
            repo, cloud_identity_id=identity.id, status=VineStatus.ACTIVE, status_message="ok"
        )
        with repo.transaction() as tx:
            got = tx.get_vine(vine.id)
            locked = tx.get_vine(vine.id, for_update=True)
        assert got == vine
        assert locked == vine
        assert isinstance(got.status, VineStatus)
        assert isinstance(got.environment_stage, EnvironmentStage)
        assert got.cluster is not None and isinstance(got.cluster.status, ComponentStatus)

    def test_vine_without_components(self, repo: Repository) -> None:
        vine = self.vine_with_parents(repo, cluster=None, databases=[], caches=[], network=None)
        with repo.transaction() as tx:
            assert tx.get_vine(vine.id) == vine
            assert tx.get_vine(uuid.uuid4()) is None

    def test_vine_components_ordered_by_created_at_then_name(self, repo: Repository) -> None:
        dbs = [
            VineDatabase(id=uuid.uuid4(), name=n, created_at=at(t), updated_at=at(t))
            for n, t in (("zeta", 0), ("alpha", 1), ("beta", 0))
        ]
        vine = self.vine_with_parents(repo, databases=dbs)
        with repo.transaction() as tx:
            got = tx.get_vine(vine.id)
        assert got is not None and [d.name for d in got.databases] == ["beta", "zeta", "alpha"]

    def test_list_vines_by_vineyard(self, repo: Repository) -> None:
        yard_a, yard_b = new_vineyard(), new_vineyard()
        v1 = new_vine(yard_a.id, project_name="one", created_at=at(1))
        v2 = new_vine(yard_a.id, project_name="two", created_at=at(2), databases=[])
        v3 = new_vine(yard_b.id, project_name="three", created_at=at(0))
        self.add(repo, yard_a, yard_b, v1, v2, v3)
        with repo.transaction() as tx:
            items, total = tx.list_vines(Page(), vineyard_id=yard_a.id)
            everything, grand_total = tx.list_vines(Page(limit=1, offset=0))
        assert items == [v1, v2] and total == 2
        assert grand_total == 3 and everything == [v3]

    def test_save_vine_updates_inserts_and_deletes_components(self, repo: Repository) -> None:
        vine = self.vine_with_parents(repo)
        vine.status = VineStatus.PROVISIONING
        vine.status_message = "deploying"
        vine.region = "us-east-1"
        vine.terraform = {"module": "other", "variables": {}}
        vine.updated_at = at(60)
        assert vine.cluster is not None
        vine.cluster.status = ComponentStatus.ACTIVE
        vine.cluster.cluster_name = "eks-1"
        vine.databases[0].endpoint = "db.example"
        vine.databases[0].status = ComponentStatus.ACTIVE
        del vine.databases[1]  # delete "reports"
        vine.databases.append(
            VineDatabase(id=uuid.uuid4(), name="analytics", created_at=at(60), updated_at=at(60))
        )
        vine.caches = []  # delete every cache
        vine.network = None  # delete the network
        with repo.transaction() as tx:
            tx.save_vine(vine)
        with repo.transaction() as tx:
            assert tx.get_vine(vine.id) == vine
        # ... and add components back to a vine that had none of that kind
        vine.network = VineNetwork(id=uuid.uuid4(), network_id="vpc-1", created_at=at(70),
                                   updated_at=at(70))
        vine.caches = [VineCache(id=uuid.uuid4(), name="c", created_at=at(70), updated_at=at(70))]
        with repo.transaction() as tx:
            tx.save_vine(vine)
        with repo.transaction() as tx:
            assert tx.get_vine(vine.id) == vine

    def test_save_vine_can_replace_a_component_with_a_new_one_of_the_same_name(
        self, repo: Repository
    ) -> None:
        vine = self.vine_with_parents(repo)
        vine.databases = [
            VineDatabase(id=uuid.uuid4(), name="main", created_at=at(5), updated_at=at(5))
        ]
        with repo.transaction() as tx:
            tx.save_vine(vine)
        with repo.transaction() as tx:
            assert tx.get_vine(vine.id) == vine

    def test_duplicate_component_names(self, repo: Repository) -> None:
        yard = new_vineyard()
        self.add(repo, yard)
        twins = [
            VineDatabase(id=uuid.uuid4(), name="main", created_at=T0, updated_at=T0)
            for _ in range(2)
        ]
        vine = new_vine(yard.id, databases=twins)
        with pytest.raises(DuplicateName), repo.transaction() as tx:
            tx.add_vine(vine)
        with repo.transaction() as tx:
            assert tx.get_vine(vine.id) is None

        ok = self.vine_with_parents(repo)
        ok.caches.append(
            VineCache(id=uuid.uuid4(), name="sessions", created_at=T0, updated_at=T0)
        )
        with pytest.raises(DuplicateName), repo.transaction() as tx:
            tx.save_vine(ok)
        ok.caches.pop()
        with repo.transaction() as tx:
            assert tx.get_vine(ok.id) == ok

    def test_same_component_name_in_two_vines_is_fine(self, repo: Repository) -> None:
        a = self.vine_with_parents(repo)
        b = self.vine_with_parents(repo)
        with repo.transaction() as tx:
            assert tx.get_vine(a.id) == a
            assert tx.get_vine(b.id) == b

    # == jobs =====================================================================================
    def test_job_round_trip(self, repo: Repository) -> None:
        identity = new_identity()
        worker = new_worker()
        vine = self.vine_with_parents(repo)
        plan = new_job(job_type=JobType.PLAN, vine_id=vine.id, status=JobStatus.SUCCESS)
        job = new_job(
            job_type=JobType.DEPLOY,
            status=JobStatus.PROCESSING,
            config_snapshot={"provider": "aws", "databases": [{"name": "main"}], "n": 1.5},
            configuration_hash="f" * 64,
            vine_id=vine.id,
            vineyard_id=vine.vineyard_id,
            cloud_identity_id=identity.id,
            plan_job_id=plan.id,
            worker_id=worker.id,
            assigned_worker_id=worker.id,
            attempts=2,
            max_attempts=5,
            cancel_requested_at=at(9),
            vine_status_before=VineStatus.ACTIVE,
            claimed_at=at(3),
            started_at=at(4),
            completed_at=None,
            error_message="nothing yet",
            execution_metadata={"phase": "apply", "outputs": {"x": {"value": 1}}},
            created_at=at(1),
            updated_at=at(4),
        )
        self.add(repo, identity, worker, plan, job)
        got = self.job(repo, job.id)
        assert got == job
        assert isinstance(got.job_type, JobType) and isinstance(got.status, JobStatus)
        assert isinstance(got.vine_status_before, VineStatus)
        assert got.cancel_requested is True
        with repo.transaction() as tx:
            assert tx.get_job(uuid.uuid4()) is None

    def test_list_jobs_newest_first_with_filters(self, repo: Repository) -> None:
        worker = new_worker()
        vine = self.vine_with_parents(repo)
        j1 = new_job(job_type=JobType.PLAN, vine_id=vine.id, vineyard_id=vine.vineyard_id,
                     created_at=at(1))
        j2 = new_job(job_type=JobType.DEPLOY, vine_id=vine.id, vineyard_id=vine.vineyard_id,
                     status=JobStatus.CLAIMED, worker_id=worker.id, created_at=at(2))
        j3 = new_job(created_at=at(3))
        self.add(repo, worker, j1, j2, j3)
        with repo.transaction() as tx:
            all_jobs, total = tx.list_jobs(JobFilter(), Page())
            assert [j.id for j in all_jobs] == [j3.id, j2.id, j1.id] and total == 3
            page, total = tx.list_jobs(JobFilter(), Page(limit=1, offset=1))
            assert [j.id for j in page] == [j2.id] and total == 3
            for flt, expected in (
                (JobFilter(status=JobStatus.QUEUED), [j3, j1]),
                (JobFilter(vine_id=vine.id), [j2, j1]),
                (JobFilter(vineyard_id=vine.vineyard_id), [j2, j1]),
                (JobFilter(job_type=JobType.DEPLOY), [j2]),
                (JobFilter(worker_id=worker.id), [j2]),
                (JobFilter(status=JobStatus.QUEUED, job_type=JobType.PLAN), [j1]),
                (JobFilter(status=JobStatus.FAILED), []),
            ):
                items, count = tx.list_jobs(flt, Page())
                assert [j.id for j in items] == [j.id for j in expected], flt
                assert count == len(expected), flt

    def test_list_jobs_same_created_at_is_stable(self, repo: Repository) -> None:
        jobs = [new_job(created_at=T0) for _ in range(5)]
        self.add(repo, *jobs)
        with repo.transaction() as tx:
            first = [j.id for j in tx.list_jobs(JobFilter(), Page(limit=3))[0]]
            rest = [j.id for j in tx.list_jobs(JobFilter(), Page(limit=3, offset=3))[0]]
        assert sorted(first + rest) == sorted(j.id for j in jobs)
        assert first + rest == sorted((j.id for j in jobs), reverse=True)

    def test_update_job_cas_success(self, repo: Repository) -> None:
        worker = new_worker()
        job = new_job(status=JobStatus.CLAIMED, worker_id=worker.id)
        self.add(repo, worker, job)
        with repo.transaction() as tx:
            updated = tx.update_job(
                job.id,
                {"status": JobStatus.PROCESSING, "started_at": at(10),
                 "execution_metadata": {"phase": "init"}},
                expected_status=JobStatus.CLAIMED,
                expected_worker_id=worker.id,
            )
        assert updated is not None
        assert updated.status == JobStatus.PROCESSING and updated.started_at == at(10)
        assert updated.execution_metadata == {"phase": "init"}
        assert updated.updated_at > job.updated_at
        _aware_utc(updated.updated_at)
        assert self.job(repo, job.id) == updated

    def test_update_job_cas_failure_changes_nothing(self, repo: Repository) -> None:
        worker, other = new_worker(), new_worker()
        job = new_job(status=JobStatus.CLAIMED, worker_id=worker.id)
        self.add(repo, worker, other, job)
        with repo.transaction() as tx:
            assert tx.update_job(job.id, {"status": JobStatus.SUCCESS},
                                 expected_status=JobStatus.PROCESSING) is None
            assert tx.update_job(job.id, {"status": JobStatus.SUCCESS},
                                 expected_worker_id=other.id) is None
            assert tx.update_job(job.id, {"status": JobStatus.SUCCESS},
                                 expected_worker_id=None) is None
            assert tx.update_job(job.id, {"status": JobStatus.SUCCESS},
                                 expected_status=[JobStatus.QUEUED, JobStatus.PROCESSING]) is None
            assert tx.update_job(uuid.uuid4(), {"status": JobStatus.SUCCESS}) is None
        assert self.job(repo, job.id) == job

    def test_update_job_cas_variants(self, repo: Repository) -> None:
        worker = new_worker()
        job = new_job()
        self.add(repo, worker, job)
        with repo.transaction() as tx:
            # "no holder" matches a job nobody holds; a list matches any of its statuses.
            claimed = tx.update_job(
                job.id,
                {"status": JobStatus.CLAIMED, "worker_id": worker.id, "attempts": 1},
                expected_status=[JobStatus.QUEUED, JobStatus.CLAIMED],
                expected_worker_id=None,
            )
            assert claimed is not None and claimed.worker_id == worker.id
            # ANY checks nothing; clearing the holder (a requeue) stores NULL.
            requeued = tx.update_job(
                job.id,
                {"status": JobStatus.QUEUED, "worker_id": None, "claimed_at": None},
                expected_status=ANY,
                expected_worker_id=ANY,
            )
            assert requeued is not None and requeued.worker_id is None
            assert requeued.status == JobStatus.QUEUED and requeued.attempts == 1
        assert self.job(repo, job.id) == requeued

    def test_update_job_rejects_unknown_fields(self, repo: Repository) -> None:
        job = new_job()
        self.add(repo, job)
        with pytest.raises((ValueError, KeyError, TypeError)), repo.transaction() as tx:
            tx.update_job(job.id, {"no_such_field": 1})

    def test_find_unfinished_vine_job(self, repo: Repository) -> None:
        vine = self.vine_with_parents(repo)
        other = self.vine_with_parents(repo)
        self.add(
            repo,
            new_job(job_type=JobType.PLAN, vine_id=vine.id, status=JobStatus.SUCCESS),
            new_job(job_type=JobType.DEPLOY, vine_id=vine.id, status=JobStatus.FAILED),
            new_job(job_type=JobType.CONNECTION_TEST, vine_id=vine.id),  # not a vine job type
            new_job(job_type=JobType.PLAN, vine_id=other.id),
        )
        with repo.transaction() as tx:
            assert tx.find_unfinished_vine_job(vine.id) is None
        for status in (JobStatus.QUEUED, JobStatus.CLAIMED, JobStatus.PROCESSING):
            job = new_job(job_type=JobType.DESTROY, vine_id=vine.id, status=status)
            self.add(repo, job)
            with repo.transaction() as tx:
                found = tx.find_unfinished_vine_job(vine.id)
                assert found is not None and found.id == job.id
                tx.update_job(job.id, {"status": JobStatus.CANCELLED})

    def test_list_held_jobs_and_cancel_requests(self, repo: Repository) -> None:
        w1, w2 = new_worker(), new_worker()
        a = new_job(status=JobStatus.PROCESSING, worker_id=w1.id, created_at=at(2))
        b = new_job(status=JobStatus.CLAIMED, worker_id=w1.id, created_at=at(1),
                    cancel_requested_at=at(5))
        c = new_job(status=JobStatus.CLAIMED, worker_id=w2.id, created_at=at(3))
        d = new_job(status=JobStatus.SUCCESS, worker_id=w1.id, created_at=at(0),
                    cancel_requested_at=at(5))
        e = new_job(created_at=at(0))
        self.add(repo, w1, w2, a, b, c, d, e)
        with repo.transaction() as tx:
            assert [j.id for j in tx.list_held_jobs()] == [b.id, a.id, c.id]
            assert [j.id for j in tx.list_held_jobs(w1.id)] == [b.id, a.id]
            assert tx.list_held_jobs(uuid.uuid4()) == []
            assert tx.cancel_requested_job_ids(w1.id) == [b.id]
            assert tx.cancel_requested_job_ids(w2.id) == []

    # == claim ====================================================================================
    def test_claim_nothing_queued(self, repo: Repository) -> None:
        worker = new_worker()
        self.add(repo, worker)
        assert repo.claim_next_job(worker.id, at(10)) is None

    def test_claim_unknown_worker(self, repo: Repository) -> None:
        self.add(repo, new_job())
        assert repo.claim_next_job(uuid.uuid4(), at(10)) is None

    def test_claim_effects(self, repo: Repository) -> None:
        worker = new_worker(status=WorkerStatus.OFFLINE, last_heartbeat=at(-600))
        job = new_job(attempts=1)
        self.add(repo, worker, job)
        claimed = repo.claim_next_job(worker.id, at(10))
        assert isinstance(claimed, ClaimedJob)
        assert claimed.cloud_identity is None
        got = claimed.job
        assert got.id == job.id
        assert got.status == JobStatus.CLAIMED
        assert got.worker_id == worker.id
        assert got.claimed_at == at(10)
        assert got.attempts == 2
        assert self.job(repo, job.id) == got
        # the claim counts as a heartbeat
        after = self.worker(repo, worker.id)
        assert after.last_heartbeat == at(10)
        assert after.status == WorkerStatus.ONLINE
        # nothing else is queued
        assert repo.claim_next_job(worker.id, at(11)) is None

    def test_claim_without_job_still_counts_as_heartbeat(self, repo: Repository) -> None:
        worker = new_worker(status=WorkerStatus.OFFLINE, last_heartbeat=at(0))
        self.add(repo, worker)
        assert repo.claim_next_job(worker.id, at(100)) is None
        after = self.worker(repo, worker.id)
        assert after.last_heartbeat == at(100) and after.status == WorkerStatus.ONLINE

    def test_claim_returns_the_cloud_identity(self, repo: Repository) -> None:
        identity = new_identity()
        worker = new_worker()
        job = new_job(cloud_identity_id=identity.id)
        self.add(repo, identity, worker, job)
        claimed = repo.claim_next_job(worker.id, at(1))
        assert claimed is not None and claimed.cloud_identity == identity

    def test_claim_oldest_first_then_id(self, repo: Repository) -> None:
        worker = new_worker()
        ids = sorted(uuid.uuid4() for _ in range(3))
        newest = new_job(created_at=at(5))
        tie_high = new_job(id=ids[2], created_at=at(1))
        tie_low = new_job(id=ids[0], created_at=at(1))
        mid = new_job(id=ids[1], created_at=at(2))
        self.add(repo, worker, newest, tie_high, mid, tie_low)
        order = []
        for i in range(4):
            claimed = repo.claim_next_job(worker.id, at(10 + i))
            assert claimed is not None
            order.append(claimed.job.id)
        assert order == [tie_low.id, tie_high.id, mid.id, newest.id]
        assert repo.claim_next_job(worker.id, at(20)) is None

    def test_claim_assigned_first(self, repo: Repository) -> None:
        worker, other = new_worker(), new_worker()
        old_unassigned = new_job(created_at=at(0))
        mine = new_job(assigned_worker_id=worker.id, created_at=at(5))
        mine_older = new_job(assigned_worker_id=worker.id, created_at=at(3))
        theirs = new_job(assigned_worker_id=other.id, created_at=at(-10))
        self.add(repo, worker, other, old_unassigned, mine, mine_older, theirs)
        got = [repo.claim_next_job(worker.id, at(10 + i)) for i in range(4)]
        assert [c.job.id if c else None for c in got] == [
            mine_older.id, mine.id, old_unassigned.id, None
        ]
        # the job pre-assigned to the other worker is only the other worker's
        assert self.job(repo, theirs.id).status == JobStatus.QUEUED
        claimed = repo.claim_next_job(other.id, at(20))
        assert claimed is not None and claimed.job.id == theirs.id

    def test_claim_bound_worker_takes_only_its_identity(self, repo: Repository) -> None:
        mine, theirs = new_identity(), new_identity(name="other")
        bound = new_worker(cloud_identity_id=mine.id)
        unbound = new_worker()
        no_identity = new_job(created_at=at(0))
        other_identity = new_job(cloud_identity_id=theirs.id, created_at=at(1))
        my_identity = new_job(cloud_identity_id=mine.id, created_at=at(2))
        assigned_elsewhere = new_job(cloud_identity_id=theirs.id, assigned_worker_id=bound.id,
                                     created_at=at(3))
        self.add(repo, mine, theirs, bound, unbound, no_identity, other_identity, my_identity,
                 assigned_elsewhere)
        first = repo.claim_next_job(bound.id, at(10))
        second = repo.claim_next_job(bound.id, at(11))
        assert first is not None and first.job.id == assigned_elsewhere.id  # assigned wins
        assert second is not None and second.job.id == my_identity.id
        assert repo.claim_next_job(bound.id, at(12)) is None
        # an unbound worker takes any unassigned job, oldest first
        got = [repo.claim_next_job(unbound.id, at(13 + i)) for i in range(3)]
        assert [c.job.id if c else None for c in got] == [
            no_identity.id, other_identity.id, None
        ]

    def test_claim_draining_or_deleted_worker_gets_nothing(self, repo: Repository) -> None:
        draining = new_worker(status=WorkerStatus.DRAINING)
        deleted = new_worker(status=WorkerStatus.ONLINE, deleted_at=at(0))
        job = new_job()
        assigned = new_job(assigned_worker_id=draining.id)
        self.add(repo, draining, deleted, job, assigned)
        assert repo.claim_next_job(draining.id, at(5)) is None
        assert repo.claim_next_job(deleted.id, at(5)) is None
        assert self.job(repo, job.id).status == JobStatus.QUEUED
        assert self.job(repo, assigned.id).status == JobStatus.QUEUED
        assert self.worker(repo, draining.id).status == WorkerStatus.DRAINING
        assert self.worker(repo, deleted.id).last_heartbeat is None

    def test_claim_skips_jobs_that_are_not_queued(self, repo: Repository) -> None:
        worker = new_worker()
        jobs = [
            new_job(status=status, created_at=at(0))
            for status in JobStatus
            if status != JobStatus.QUEUED
        ]
        queued = new_job(created_at=at(1))
        self.add(repo, worker, *jobs, queued)
        claimed = repo.claim_next_job(worker.id, at(5))
        assert claimed is not None and claimed.job.id == queued.id
        assert repo.claim_next_job(worker.id, at(6)) is None

    def test_requeued_job_is_claimable_again(self, repo: Repository) -> None:
        w1, w2 = new_worker(), new_worker()
        job = new_job()
        self.add(repo, w1, w2, job)
        assert repo.claim_next_job(w1.id, at(1)) is not None
        with repo.transaction() as tx:
            assert tx.update_job(job.id, {"status": JobStatus.QUEUED, "worker_id": None},
                                 expected_status=JobStatus.CLAIMED,
                                 expected_worker_id=w1.id) is not None
        claimed = repo.claim_next_job(w2.id, at(2))
        assert claimed is not None
        assert claimed.job.worker_id == w2.id and claimed.job.attempts == 2

    # == logs =====================================================================================
    def _job_for_logs(self, repo: Repository) -> Job:
        job = new_job(status=JobStatus.PROCESSING)
        self.add(repo, job)
        return job

    def test_append_and_list_logs(self, repo: Repository) -> None:
        job = self._job_for_logs(repo)
        other = self._job_for_logs(repo)
        ids = []
        with repo.transaction() as tx:
            for i in range(5):
                chunk, dup = tx.append_log(job.id, f"line {i}\n",
                                           StreamType.STDERR if i % 2 else StreamType.STDOUT,
                                           None, at(i))
                assert dup is False
                ids.append(chunk.id)
                tx.append_log(other.id, "noise\n", StreamType.SYSTEM, None, at(i))
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert all(isinstance(i, int) for i in ids)
        with repo.transaction() as tx:
            logs = tx.list_logs(job.id, 0, 1000)
        assert [c.id for c in logs] == ids
        assert [c.log_chunk for c in logs] == [f"line {i}\n" for i in range(5)]
        assert logs[1].stream_type == StreamType.STDERR and logs[0].seq is None
        assert logs[2].created_at == at(2) and logs[0].job_id == job.id
        _aware_utc(logs[0].created_at)

    def test_log_pagination_reproduces_everything_once(self, repo: Repository) -> None:
        job = self._job_for_logs(repo)
        with repo.transaction() as tx:
            for i in range(7):
                tx.append_log(job.id, f"{i}", StreamType.STDOUT, i, at(i))
        seen: list[str] = []
        after = 0
        with repo.transaction() as tx:
            while True:
                page = tx.list_logs(job.id, after, 3)
                if not page:
                    break
                assert len(page) <= 3
                seen.extend(c.log_chunk for c in page)
                after = page[-1].id
        assert seen == [str(i) for i in range(7)]

    def test_log_dedupe_by_seq(self, repo: Repository) -> None:
        job = self._job_for_logs(repo)
        other = self._job_for_logs(repo)
        with repo.transaction() as tx:
            first, dup1 = tx.append_log(job.id, "hello\n", StreamType.STDOUT, 17, at(1))
            again, dup2 = tx.append_log(job.id, "hello again\n", StreamType.STDERR, 17, at(2))
            elsewhere, dup3 = tx.append_log(other.id, "x", StreamType.STDOUT, 17, at(3))
        assert (dup1, dup2, dup3) == (False, True, False)
        assert again == first and again.log_chunk == "hello\n" and again.seq == 17
        assert elsewhere.id != first.id
        with repo.transaction() as tx:
            dup_later, dup4 = tx.append_log(job.id, "retry", StreamType.STDOUT, 17, at(9))
            assert dup4 is True and dup_later == first
            assert [c.log_chunk for c in tx.list_logs(job.id, 0, 100)] == ["hello\n"]

    def test_log_without_seq_never_deduplicated(self, repo: Repository) -> None:
        job = self._job_for_logs(repo)
        with repo.transaction() as tx:
            a, _ = tx.append_log(job.id, "same", StreamType.STDOUT, None, at(1))
            b, dup = tx.append_log(job.id, "same", StreamType.STDOUT, None, at(1))
            assert dup is False and b.id > a.id
            assert len(tx.list_logs(job.id, 0, 100)) == 2

    def test_log_ids_keep_growing_across_transactions(self, repo: Repository) -> None:
        job = self._job_for_logs(repo)
        with repo.transaction() as tx:
            a, _ = tx.append_log(job.id, "a", StreamType.STDOUT, 0, at(1))
        with repo.transaction() as tx:
            b, _ = tx.append_log(job.id, "b", StreamType.STDOUT, 1, at(1))
        assert b.id > a.id
        with repo.transaction() as tx:
            assert [c.id for c in tx.list_logs(job.id, a.id, 10)] == [b.id]
            assert tx.list_logs(job.id, b.id, 10) == []
            assert tx.list_logs(uuid.uuid4(), 0, 10) == []

    # == plan artifacts ===========================================================================
    def test_plan_artifact_save_get_replace(self, repo: Repository) -> None:
        job = new_job(job_type=JobType.PLAN)
        self.add(repo, job)
        key = f"{job.id}/terraform.plan.out"
        first = PlanArtifact(job_id=job.id, key=key, size=10, sha256="a" * 64, created_at=at(1))
        with repo.transaction() as tx:
            assert tx.get_plan_artifact(job.id) is None
            tx.save_plan_artifact(first)
        with repo.transaction() as tx:
            assert tx.get_plan_artifact(job.id) == first
        second = PlanArtifact(job_id=job.id, key=key, size=60 * 1024 * 1024 * 1024,
                              sha256="b" * 64, created_at=at(2))
        with repo.transaction() as tx:
            tx.save_plan_artifact(second)
        with repo.transaction() as tx:
            assert tx.get_plan_artifact(job.id) == second

    # == terraform state locks ====================================================================
    def test_state_lock_acquire_refuse_release(self, repo: Repository) -> None:
        vine = self.vine_with_parents(repo)
        worker = new_worker()
        self.add(repo, worker)
        info = {"ID": "lock-1", "Operation": "OperationTypeApply", "Who": "tendril@host"}
        lock = StateLock(vine_id=vine.id, lock_id="lock-1", info=info, worker_id=worker.id,
                         created_at=at(1))
        with repo.transaction() as tx:
            assert tx.get_state_lock(vine.id) is None
            assert tx.acquire_state_lock(lock) is None
        with repo.transaction() as tx:
            assert tx.get_state_lock(vine.id) == lock
            rival = StateLock(vine_id=vine.id, lock_id="lock-2", info={"ID": "lock-2"},
                              worker_id=None, created_at=at(2))
            assert tx.acquire_state_lock(rival) == lock
            assert tx.release_state_lock(vine.id, "lock-2") is False
            assert tx.get_state_lock(vine.id) == lock
            assert tx.release_state_lock(vine.id, "lock-1") is True
            assert tx.get_state_lock(vine.id) is None
            assert tx.release_state_lock(vine.id, "lock-1") is False
            assert tx.acquire_state_lock(rival) is None
        with repo.transaction() as tx:
            assert tx.get_state_lock(vine.id) == rival
            assert tx.release_state_lock(vine.id, None) is True  # force-unlock
            assert tx.get_state_lock(vine.id) is None

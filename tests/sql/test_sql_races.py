"""Forced races between writers.

PostgreSQL (two connections, the interleaving forced: the first transaction holds its row lock
until the second is seen waiting on it in ``pg_stat_activity``):
- a worker completing while the recovery sweep requeues (both compare-and-set) → one winner;
- the same ``(job, seq)`` log chunk posted twice concurrently → stored once, both get its id;
- two agents taking the same Terraform state lock → one holder;
- ``get_vine(for_update=True)`` serialises two transactions on the same vine;
- a queued job referenced by an uncommitted child row (a log insert, which holds KEY SHARE on
  the job) is still claimable — that is why the claim locks FOR NO KEY UPDATE, not FOR UPDATE;
- a job row locked by another claimer is skipped (SKIP LOCKED), not waited on.

Both dialects (free-running threads started together, many rounds): claim vs cancel, and
completion vs recovery, always leave exactly one outcome.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from backends.sql.repository import SqlRepository
from vintner.domain.model import (
    Job,
    JobStatus,
    JobType,
    StateLock,
    StreamType,
    Vine,
    Vineyard,
    Worker,
    WorkerMode,
    WorkerStatus,
    utcnow,
)

pytestmark = pytest.mark.timeout(120)


# -- helpers ----------------------------------------------------------------------------------
def _worker(repo: SqlRepository) -> Worker:
    worker = Worker(id=uuid.uuid4(), name="w", mode=WorkerMode.SELF_HOSTED, token_hash="0" * 64,
                    status=WorkerStatus.ONLINE, last_heartbeat=utcnow())
    with repo.transaction() as tx:
        tx.add_worker(worker)
    return worker


def _job(repo: SqlRepository, **kw: Any) -> Job:
    job = Job(id=uuid.uuid4(), job_type=JobType.PLAN, **kw)
    with repo.transaction() as tx:
        tx.add_job(job)
    return job


def _vine(repo: SqlRepository) -> Vine:
    yard = Vineyard(id=uuid.uuid4(), name=f"y-{uuid.uuid4().hex[:8]}")
    vine = Vine(id=uuid.uuid4(), vineyard_id=yard.id, project_name="p")
    with repo.transaction() as tx:
        tx.add_vineyard(yard)
        tx.add_vine(vine)
    return vine


def _status(repo: SqlRepository, job_id: uuid.UUID) -> JobStatus:
    with repo.transaction() as tx:
        job = tx.get_job(job_id)
    assert job is not None
    return job.status


def _wait_for_lock_waiter(repo: SqlRepository, timeout: float = 10.0) -> None:
    """Block until some other session of this database waits on a heavyweight lock."""
    deadline = time.monotonic() + timeout
    with repo.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the second writer never waited for the first one's lock")


class _Background:
    """Run ``fn`` in a thread; ``result()`` re-raises its exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float = 30) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background writer did not finish"
        if self._error is not None:
            raise self._error
        return self._value


@pytest.fixture
def pg_repo(pg_url: str) -> Iterator[SqlRepository]:
    repo = SqlRepository.from_url(pg_url, {"pool_size": 6})
    yield repo
    repo.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_repo(request: pytest.FixtureRequest) -> Iterator[SqlRepository]:
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("sqlite_url")
    repo = SqlRepository.from_url(url, {"pool_size": 6})
    yield repo
    repo.close()


def _complete(repo: SqlRepository, job_id: uuid.UUID, worker_id: uuid.UUID) -> Job | None:
    with repo.transaction() as tx:
        return tx.update_job(
            job_id, {"status": JobStatus.SUCCESS, "completed_at": utcnow()},
            expected_status=[JobStatus.CLAIMED, JobStatus.PROCESSING],
            expected_worker_id=worker_id,
        )


def _recover(repo: SqlRepository, job_id: uuid.UUID, worker_id: uuid.UUID) -> Job | None:
    with repo.transaction() as tx:
        return tx.update_job(
            job_id, {"status": JobStatus.QUEUED, "worker_id": None, "claimed_at": None},
            expected_status=[JobStatus.CLAIMED, JobStatus.PROCESSING],
            expected_worker_id=worker_id,
        )


# -- PostgreSQL, forced interleavings ---------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("first", ["complete", "recover"])
def test_pg_completion_races_recovery(pg_repo: SqlRepository, first: str) -> None:
    worker = _worker(pg_repo)
    job = _job(pg_repo, status=JobStatus.PROCESSING, worker_id=worker.id, attempts=1)
    writers = {"complete": _complete, "recover": _recover}
    second = "recover" if first == "complete" else "complete"

    with pg_repo.transaction() as tx:
        change = (
            {"status": JobStatus.SUCCESS} if first == "complete"
            else {"status": JobStatus.QUEUED, "worker_id": None}
        )
        won = tx.update_job(job.id, change,
                            expected_status=[JobStatus.CLAIMED, JobStatus.PROCESSING],
                            expected_worker_id=worker.id)
        assert won is not None
        loser = _Background(lambda: writers[second](pg_repo, job.id, worker.id))
        _wait_for_lock_waiter(pg_repo)
    # The first transaction committed; the waiting CAS re-checked its WHERE on the new row.
    assert loser.result() is None
    expected = JobStatus.SUCCESS if first == "complete" else JobStatus.QUEUED
    assert _status(pg_repo, job.id) == expected


@pytest.mark.postgres
def test_pg_same_log_seq_posted_twice_concurrently(pg_repo: SqlRepository) -> None:
    job = _job(pg_repo, status=JobStatus.PROCESSING)

    def second() -> tuple[Any, bool]:
        with pg_repo.transaction() as tx:
            return tx.append_log(job.id, "retry", StreamType.STDOUT, 7, utcnow())

    with pg_repo.transaction() as tx:
        first, dup = tx.append_log(job.id, "original", StreamType.STDOUT, 7, utcnow())
        assert dup is False
        other = _Background(second)
        _wait_for_lock_waiter(pg_repo)  # waits on our uncommitted (job, seq) key
    chunk, dup = other.result()
    assert dup is True and chunk.id == first.id and chunk.log_chunk == "original"
    with pg_repo.transaction() as tx:
        assert [c.log_chunk for c in tx.list_logs(job.id, 0, 10)] == ["original"]


@pytest.mark.postgres
def test_pg_log_ids_follow_commit_order_per_job(pg_repo: SqlRepository) -> None:
    """A reader paging with ``id > after`` never skips a chunk: the second concurrent append
    of a job waits for the first one's commit before it gets its id."""
    job = _job(pg_repo, status=JobStatus.PROCESSING)
    other_job = _job(pg_repo, status=JobStatus.PROCESSING)

    def second() -> Any:
        with pg_repo.transaction() as tx:
            return tx.append_log(job.id, "second", StreamType.STDOUT, 2, utcnow())[0]

    with pg_repo.transaction() as tx:
        first, _ = tx.append_log(job.id, "first", StreamType.STDOUT, 1, utcnow())
        later = _Background(second)
        _wait_for_lock_waiter(pg_repo)
        # another job's appends are not held up
        with pg_repo.transaction() as tx2:
            tx2.append_log(other_job.id, "elsewhere", StreamType.STDOUT, 1, utcnow())
        # nothing of this job is visible to readers yet, in particular not "second"
        with pg_repo.transaction() as reader:
            assert reader.list_logs(job.id, 0, 10) == []
    chunk = later.result()
    assert chunk.id > first.id
    with pg_repo.transaction() as reader:
        assert [c.log_chunk for c in reader.list_logs(job.id, 0, 10)] == ["first", "second"]


@pytest.mark.postgres
def test_pg_same_log_seq_after_the_first_insert_rolled_back(pg_repo: SqlRepository) -> None:
    job = _job(pg_repo, status=JobStatus.PROCESSING)

    def second() -> tuple[Any, bool]:
        with pg_repo.transaction() as tx:
            return tx.append_log(job.id, "retry", StreamType.STDOUT, 7, utcnow())

    with pytest.raises(RuntimeError), pg_repo.transaction() as tx:
        tx.append_log(job.id, "original", StreamType.STDOUT, 7, utcnow())
        other = _Background(second)
        _wait_for_lock_waiter(pg_repo)
        raise RuntimeError("request failed")
    chunk, dup = other.result()
    assert dup is False and chunk.log_chunk == "retry"


@pytest.mark.postgres
def test_pg_state_lock_taken_concurrently(pg_repo: SqlRepository) -> None:
    vine = _vine(pg_repo)
    mine = StateLock(vine_id=vine.id, lock_id="a", info={"ID": "a"}, worker_id=None)
    theirs = StateLock(vine_id=vine.id, lock_id="b", info={"ID": "b"}, worker_id=None)

    def rival() -> StateLock | None:
        with pg_repo.transaction() as tx:
            return tx.acquire_state_lock(theirs)

    with pg_repo.transaction() as tx:
        assert tx.acquire_state_lock(mine) is None
        other = _Background(rival)
        _wait_for_lock_waiter(pg_repo)
    held = other.result()
    assert held is not None and held.lock_id == "a"


@pytest.mark.postgres
def test_pg_get_vine_for_update_serialises(pg_repo: SqlRepository) -> None:
    vine = _vine(pg_repo)
    order: list[str] = []

    def second() -> None:
        with pg_repo.transaction() as tx:
            tx.get_vine(vine.id, for_update=True)
            order.append("second")

    with pg_repo.transaction() as tx:
        assert tx.get_vine(vine.id, for_update=True) is not None
        other = _Background(second)
        _wait_for_lock_waiter(pg_repo)
        order.append("first")
    other.result()
    assert order == ["first", "second"]


@pytest.mark.postgres
def test_pg_job_with_uncommitted_child_row_is_still_claimable(pg_repo: SqlRepository) -> None:
    worker = _worker(pg_repo)
    job = _job(pg_repo)
    with pg_repo.transaction() as tx:
        # An open transaction inserts a row referencing the job (KEY SHARE lock on the job).
        tx.append_log(job.id, "late line of a previous attempt", StreamType.SYSTEM, None,
                      utcnow())
        claimed = _Background(lambda: pg_repo.claim_next_job(worker.id, utcnow())).result(10)
        assert claimed is not None and claimed.job.id == job.id
        # For contrast: FOR UPDATE conflicts with KEY SHARE, so SKIP LOCKED would have skipped it.
        with pg_repo.engine.connect() as conn:
            skipped = conn.execute(
                text("SELECT id FROM jobs WHERE id = :id FOR UPDATE SKIP LOCKED"), {"id": job.id}
            ).all()
            conn.rollback()
        assert skipped == []
    with pg_repo.transaction() as tx:
        assert len(tx.list_logs(job.id, 0, 10)) == 1


@pytest.mark.postgres
def test_pg_claim_skips_a_row_locked_by_another_claimer(pg_repo: SqlRepository) -> None:
    worker = _worker(pg_repo)
    now = utcnow()
    locked = _job(pg_repo, created_at=now)
    free = _job(pg_repo, created_at=now.replace(microsecond=(now.microsecond + 1) % 1000000))
    oldest, newer = sorted([locked, free], key=lambda j: (j.created_at, j.id))
    with pg_repo.engine.connect() as conn:
        conn.execute(text("SELECT id FROM jobs WHERE id = :id FOR NO KEY UPDATE"),
                     {"id": oldest.id})
        claimed = _Background(lambda: pg_repo.claim_next_job(worker.id, utcnow())).result(10)
        conn.rollback()
    assert claimed is not None and claimed.job.id == newer.id
    again = pg_repo.claim_next_job(worker.id, utcnow())
    assert again is not None and again.job.id == oldest.id


# -- both dialects, free-running --------------------------------------------------------------
def _race(a: Callable[[], Any], b: Callable[[], Any]) -> tuple[Any, Any]:
    barrier = threading.Barrier(2)

    def gated(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            barrier.wait()
            return fn()

        return run

    ta, tb = _Background(gated(a)), _Background(gated(b))
    return ta.result(), tb.result()


def test_claim_races_cancel(any_repo: SqlRepository) -> None:
    worker = _worker(any_repo)
    outcomes = set()
    for _ in range(25):
        job = _job(any_repo)

        def cancel(job_id: uuid.UUID = job.id) -> Job | None:
            with any_repo.transaction() as tx:
                return tx.update_job(job_id, {"status": JobStatus.CANCELLED},
                                     expected_status=JobStatus.QUEUED)

        claimed, cancelled = _race(lambda: any_repo.claim_next_job(worker.id, utcnow()), cancel)
        final = _status(any_repo, job.id)
        if claimed is not None:
            assert cancelled is None and final == JobStatus.CLAIMED
            with any_repo.transaction() as tx:  # finish it so the next round starts clean
                tx.update_job(job.id, {"status": JobStatus.SUCCESS})
            outcomes.add("claimed")
        else:
            assert cancelled is not None and final == JobStatus.CANCELLED
            outcomes.add("cancelled")
    assert outcomes  # both outcomes are legal; which one wins is up to the scheduler


def test_completion_races_recovery(any_repo: SqlRepository) -> None:
    worker = _worker(any_repo)
    for _ in range(25):
        job = _job(any_repo, status=JobStatus.PROCESSING, worker_id=worker.id, attempts=1)
        done, requeued = _race(lambda j=job.id: _complete(any_repo, j, worker.id),
                               lambda j=job.id: _recover(any_repo, j, worker.id))
        assert (done is None) != (requeued is None), "exactly one compare-and-set must win"
        final = _status(any_repo, job.id)
        assert final == (JobStatus.SUCCESS if done is not None else JobStatus.QUEUED)
        if final == JobStatus.QUEUED:
            with any_repo.transaction() as tx:
                tx.update_job(job.id, {"status": JobStatus.CANCELLED})

"""Concurrent claimers for the SQL concurrency tests (importable by spawned processes)."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from backends.sql.mapping import job_to_row
from backends.sql.models import jobs as job_table
from backends.sql.repository import SqlRepository
from vintner.domain.model import Job, JobStatus, JobType, Worker, WorkerMode, WorkerStatus, utcnow


def seed(repo: SqlRepository, jobs: int, workers: int) -> list[uuid.UUID]:
    """Insert ``jobs`` queued jobs (distinct created_at) and ``workers`` workers; the worker ids.

    The jobs go in as one multi-row INSERT (seeding is not what is under test), then the table
    is ANALYZEd on PostgreSQL, as autovacuum would do after a bulk load: with no statistics the
    planner may sort every queued row for each claim instead of walking the partial index.
    """
    base = utcnow()
    worker_ids = [uuid.uuid4() for _ in range(workers)]
    with repo.transaction() as tx:
        for wid in worker_ids:
            tx.add_worker(Worker(id=wid, name=f"w-{wid.hex[:6]}", mode=WorkerMode.SELF_HOSTED,
                                 token_hash="0" * 64, status=WorkerStatus.ONLINE,
                                 last_heartbeat=base))
    rows = [
        job_to_row(Job(id=uuid.uuid4(), job_type=JobType.CONNECTION_TEST,
                       created_at=base + timedelta(microseconds=i), updated_at=base))
        for i in range(jobs)
    ]
    with repo.engine.begin() as conn:
        conn.execute(insert(job_table), rows)
    if repo.dialect == "postgresql":
        with repo.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE jobs")
    return worker_ids


def claim_until_empty(repo: SqlRepository, worker_id: uuid.UUID) -> list[str]:
    """Claim (and complete, with a compare-and-set) until nothing is left for this worker."""
    claimed: list[str] = []
    while True:
        got = repo.claim_next_job(worker_id, utcnow())
        if got is None:
            return claimed
        claimed.append(str(got.job.id))
        with repo.transaction() as tx:
            done = tx.update_job(
                got.job.id,
                {"status": JobStatus.SUCCESS, "completed_at": utcnow()},
                expected_status=JobStatus.CLAIMED,
                expected_worker_id=worker_id,
            )
            if done is None:
                raise AssertionError(f"lost job {got.job.id} that this worker had just claimed")


def run_threads(repo: SqlRepository, worker_ids: list[uuid.UUID]) -> tuple[list[str], list[str]]:
    """One thread per worker id, all started together; (claimed job ids, error reprs)."""
    claimed: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(worker_ids))

    def run(worker_id: uuid.UUID) -> None:
        try:
            barrier.wait()
            mine = claim_until_empty(repo, worker_id)
            with lock:
                claimed.extend(mine)
        except BaseException as exc:  # reported to the test, which fails on any
            with lock:
                errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(w,)) for w in worker_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return claimed, errors


def process_main(url: str, worker_ids: list[str], pool_size: int, start: Any, out: Any) -> None:
    """Entry point of one claimer process: its own repository (own connections), one thread per
    worker id, started when every process is ready (``start``: a multiprocessing Barrier);
    puts (claimed job ids, error reprs) on ``out``."""
    repo = SqlRepository.from_url(url, {"pool_size": pool_size, "max_overflow": 4})
    try:
        repo.ping()  # connect before the start line, not after
        start.wait()
        out.put(run_threads(repo, [uuid.UUID(w) for w in worker_ids]))
    except BaseException as exc:
        out.put(([], [repr(exc)]))
    finally:
        repo.close()


def run_processes(
    url: str, worker_ids: list[uuid.UUID], processes: int
) -> tuple[list[str], list[str]]:
    """Spread the workers over ``processes`` spawned processes; (claimed ids, errors)."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes)
    out = ctx.Queue()
    groups = [[str(w) for w in worker_ids[i::processes]] for i in range(processes)]
    procs = [
        ctx.Process(target=process_main, args=(url, group, len(group) + 1, start, out))
        for group in groups
    ]
    for proc in procs:
        proc.start()
    claimed: list[str] = []
    errors: list[str] = []
    for _ in procs:
        got, errs = out.get(timeout=600)
        claimed.extend(got)
        errors.extend(errs)
    for proc in procs:
        proc.join(60)
        if proc.exitcode != 0:
            errors.append(f"process exited with {proc.exitcode}")
    return claimed, errors

"""Claim benchmark: claims per second at three layers, on SQLite and on PostgreSQL.

    .venv/bin/python bench/claim.py [--db sqlite|postgresql|all] [--jobs 5000] [--threads 16]

For each database, the same queue (``--jobs`` QUEUED jobs, seeded in one multi-row INSERT) is
emptied by ``--threads`` claimers, three times:

``raw``         the baseline: the bare claim statement, one connection per thread.
                PostgreSQL: ``SELECT * FROM claim_next_job(%s, %s)`` through psycopg
                (autocommit: the call is its own transaction). SQLite: the single
                ``UPDATE jobs … WHERE id = (SELECT … LIMIT 1) RETURNING *`` in
                ``BEGIN IMMEDIATE`` … ``COMMIT`` through the sqlite3 module (no heartbeat
                update: that is what the repository adds on SQLite).
``repository``  ``SqlRepository.claim_next_job`` (SQLAlchemy, the pool, row → dataclasses,
                retries; on SQLite the heartbeat ``UPDATE … RETURNING`` as well).
``http``        ``POST /api/jobs/claim`` against ``vintner serve`` in production mode
                (gunicorn, 2 processes × 8 threads), one registered worker and one httpx
                client per thread (authentication, the repository, JSON out; the client's
                own work shares the CPUs).

Claims only (no completions), until every claimer sees an empty queue; every job must be claimed
exactly once. Prints claims per second and each layer's ratio to that database's baseline.
PostgreSQL: a throwaway database on ``VINTNER_TEST_POSTGRES_ADMIN_URL``'s server (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards; skipped with a message if
the server cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(REPO))

from backends.sql.repository import SqlRepository  # noqa: E402
from tests.support import db  # noqa: E402
from tests.support.claimers import seed  # noqa: E402
from tests.support.http_agents import register_agents, run_agents  # noqa: E402
from tests.support.server import running_server  # noqa: E402
from vintner.domain.model import utcnow  # noqa: E402

# the repository's two passes (pre-assigned to this worker, then unassigned), as bare SQL
_SQLITE_PASS = """
UPDATE jobs SET status = 'CLAIMED', worker_id = :w, claimed_at = :now, updated_at = :now,
       attempts = attempts + 1
WHERE id = (SELECT id FROM jobs WHERE status = 'QUEUED' AND {candidates}
            ORDER BY created_at, id LIMIT 1)
  AND status = 'QUEUED'
RETURNING id
"""
SQLITE_CLAIM = (_SQLITE_PASS.format(candidates="assigned_worker_id = :w"),
                _SQLITE_PASS.format(candidates="assigned_worker_id IS NULL"))

Claimer = Callable[[uuid.UUID], list[str]]


def run_threads(worker_ids: list[uuid.UUID], claim_all: Claimer) -> tuple[list[str], float]:
    """One thread per worker, started together; (claimed ids, seconds)."""
    claimed: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(worker_ids) + 1)

    def work(worker_id: uuid.UUID) -> None:
        try:
            barrier.wait()
            mine = claim_all(worker_id)
            with lock:
                claimed.extend(mine)
        except BaseException as exc:
            with lock:
                errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(w,)) for w in worker_ids]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} claimer(s) failed; the first: {errors[0]}")
    return claimed, seconds


def raw_postgres(url: str, worker_ids: list[uuid.UUID]) -> Claimer:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    # connected before the clock starts, as the repository's warmed pool is
    conns = {w: psycopg.connect(conninfo, autocommit=True) for w in worker_ids}

    def claim_all(worker_id: uuid.UUID) -> list[str]:
        got: list[str] = []
        with conns[worker_id] as conn:
            while True:
                row = conn.execute("SELECT id FROM claim_next_job(%s, %s)",
                                   (worker_id, datetime.now(UTC))).fetchone()
                if row is None:
                    return got
                got.append(str(row[0]))

    return claim_all


def raw_sqlite(path: Path, worker_ids: list[uuid.UUID]) -> Claimer:
    conns = {}
    for w in worker_ids:  # connected before the clock starts
        conns[w] = sqlite3.connect(path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        conns[w].execute("PRAGMA busy_timeout = 30000")
        conns[w].execute("PRAGMA synchronous = NORMAL")

    def claim_all(worker_id: uuid.UUID) -> list[str]:
        got: list[str] = []
        conn = conns[worker_id]
        try:
            while True:
                now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
                conn.execute("BEGIN IMMEDIATE")
                row = None
                for statement in SQLITE_CLAIM:
                    row = conn.execute(statement, {"w": worker_id.hex, "now": now}).fetchone()
                    if row is not None:
                        break
                conn.execute("COMMIT")
                if row is None:
                    return got
                got.append(row[0])
        finally:
            conn.close()

    return claim_all


def through_repository(repo: SqlRepository) -> Claimer:
    def claim_all(worker_id: uuid.UUID) -> list[str]:
        got: list[str] = []
        while (claimed := repo.claim_next_job(worker_id, utcnow())) is not None:
            got.append(str(claimed.job.id))
        return got

    return claim_all


def warm_pool(repo: SqlRepository, connections: int) -> None:
    """Open the pool's connections before the clock starts."""
    held = [repo.engine.connect() for _ in range(connections)]
    for conn in held:
        conn.close()


def empty_queue(repo: SqlRepository) -> None:
    with repo.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM jobs")


def check(claimed: list[str], jobs: int) -> None:
    twice = [j for j, n in Counter(claimed).items() if n > 1]
    if twice or len(claimed) != jobs:
        raise RuntimeError(f"{len(claimed)} claims for {jobs} jobs, {len(twice)} claimed twice")


def bench_database(name: str, url: str, jobs: int, threads: int, tmp: Path) -> list[tuple]:
    repo = SqlRepository.from_url(url, {"pool_size": threads + 2, "max_overflow": 4})
    rows: list[tuple] = []
    try:
        for layer in ("raw", "repository"):
            empty_queue(repo)
            workers = seed(repo, jobs=jobs, workers=threads)
            if layer == "repository":
                warm_pool(repo, threads)
                claimer = through_repository(repo)
            elif name == "postgresql":
                claimer = raw_postgres(url, workers)
            else:
                claimer = raw_sqlite(Path(url.removeprefix("sqlite:///")), workers)
            claimed, seconds = run_threads(workers, claimer)
            check(claimed, jobs)
            rows.append((name, layer, jobs, seconds))
            print(f"  {name:10} {layer:10} {jobs / seconds:9.0f} claims/s", flush=True)
        empty_queue(repo)
        with running_server(tmp / f"server-{name}", mode="production",
                            env={"VINTNER_DATABASE_URL": url}) as server:
            agents = register_agents(server, threads, prefix="bench")
            seed(repo, jobs=jobs, workers=0)
            run = run_agents(server.url, agents, complete=False)
            if run.errors:
                raise RuntimeError(f"HTTP claimers failed; the first: {run.errors[0]}")
            check(run.claimed, jobs)
            rows.append((name, "http", jobs, run.seconds))
            print(f"  {name:10} {'http':10} {jobs / run.seconds:9.0f} claims/s", flush=True)
    finally:
        repo.close()
    return rows


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), "
            f"Python {platform.python_version()}, load average {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"{args.jobs} jobs, {args.threads} claimer threads per layer")
    rows: list[tuple] = []
    with tempfile.TemporaryDirectory(prefix="vintner-bench-claim-") as tmpdir:
        tmp = Path(tmpdir)
        if args.db in ("sqlite", "all"):
            path = tmp / "claim.db"
            db.migrate(f"sqlite:///{path}")
            rows += bench_database("sqlite", f"sqlite:///{path}", args.jobs, args.threads, tmp)
        if args.db in ("postgresql", "all"):
            reason = db.postgres_unavailable_reason()
            if reason is not None:
                print(f"PostgreSQL skipped: {reason}")
            else:
                with psycopg.connect(db._conninfo(db.ADMIN_URL)) as conn:
                    print(f"PostgreSQL {conn.execute('SHOW server_version').fetchone()[0]}")
                name, url = db.create_database("vintner_bench")
                try:
                    db.migrate(url)
                    rows += bench_database("postgresql", url, args.jobs, args.threads, tmp)
                finally:
                    db.drop_database(name)

    print()
    print("| database | layer | jobs | seconds | claims/s | × baseline (raw) |")
    print("|---|---|---|---|---|---|")
    baselines = {n: j / s for n, layer, j, s in rows if layer == "raw"}
    for name, layer, jobs, seconds in rows:
        rate = jobs / seconds
        print(f"| {name} | {layer} | {jobs} | {seconds:.2f} | {rate:.0f} | "
              f"{rate / baselines[name]:.2f} |")


if __name__ == "__main__":
    main()

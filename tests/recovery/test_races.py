"""Exactly one outcome per job when writers race (domain.md "compare-and-set"): several sweeps
at once, a worker completing while the sweep recovers the same job, a cancel landing while the
sweep requeues. The interleavings are forced with hooks between a writer's read and its write.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backends.sql.repository import SqlRepository
from tests.recovery.helpers import (
    NOT_HELD,
    Driver,
    HookedRepository,
    age_worker,
    repo,
    stored_job,
    system_lines,
)
from tests.support.app import app_config
from vintner import create_app
from vintner.domain import jobs, recovery
from vintner.domain.liveness import Timings
from vintner.domain.model import JobStatus, utcnow
from vintner.errors import Conflict

SHORT = {"worker_offline_after_s": 1, "job_recovery_after_s": 2, "job_timeout_s": 60}
TIMINGS = Timings(**SHORT)


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return dict(SHORT)


def run_threads(*targets: Callable[[], Any]) -> list[Any]:
    """Run each target in its own thread; return results, re-raise the first error."""
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def wrap(i: int, fn: Callable[[], Any]) -> None:
        try:
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a racing thread hung"
    if errors:
        raise errors[0]
    return results


def lost_jobs(app: Flask, driver: Driver) -> dict[str, str]:
    """Nine held jobs of three lost workers: {job id: the outcome recovery must give}."""
    expected: dict[str, str] = {}
    workers = []
    for _ in range(3):
        worker = driver.worker()
        fetch = driver.enqueue("FETCH_RESOURCES")
        plan = driver.enqueue("PLAN", vine_id=driver.vine()["id"])
        deploy = driver.enqueue("DEPLOY", vine_id=driver.vine()["id"])
        for job in (fetch, plan, deploy):
            assert driver.claim(worker)["job"]["id"] == job["id"]
        for job in (plan, deploy):
            driver.status(worker, job["id"], "PROCESSING")
        expected.update({fetch["id"]: "QUEUED", plan["id"]: "QUEUED", deploy["id"]: "FAILED"})
        workers.append(worker)
    for worker in workers:
        age_worker(app, worker.id, 3)
    return expected


def test_concurrent_sweeps_give_each_job_one_outcome(
    app: Flask, driver: Driver, client: FlaskClient, database_url: str
) -> None:
    expected = lost_jobs(app, driver)
    # four "processes": each its own repository (engine, connections) on the same database
    repos = [SqlRepository.from_url(database_url, {}) for _ in range(4)]
    barrier = threading.Barrier(len(repos))
    now = utcnow()

    def sweeper(r: SqlRepository) -> recovery.SweepReport:
        barrier.wait()
        return recovery.sweep(r, TIMINGS, now)

    try:
        reports = run_threads(*(lambda r=r: sweeper(r) for r in repos))
    finally:
        for r in repos:
            r.close()
    outcomes = Counter(str(j) for rep in reports
                       for j in (*rep.requeued, *rep.failed, *rep.cancelled))
    assert outcomes == Counter(expected.keys())  # each job recovered by exactly one sweep
    for job_id, status in expected.items():
        assert driver.get_job(job_id)["status"] == status
        assert len(system_lines(client, job_id)) == 1
    # sweeping again finds nothing to do
    assert recovery.sweep(repo(app), TIMINGS, utcnow()).total() == 0
    assert all(len(system_lines(client, j)) == 1 for j in expected)


@pytest.fixture
def second_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """Another server process on the same database (own repository, own sweep thread)."""
    other = create_app(app_config(database_url, tmp_path / "second", **SHORT,
                                  sweep_enabled=True, sweep_interval_s=0.1))
    yield other
    other.extensions["vintner_sweeper_stop"].set()
    time.sleep(0.2)
    other.extensions["vintner"].repository.close()


@pytest.mark.parametrize("app_overrides", [{**SHORT, "sweep_enabled": True,
                                            "sweep_interval_s": 0.1}])
def test_background_sweep_threads_of_two_servers(
    app: Flask, second_app: Flask, driver: Driver, client: FlaskClient
) -> None:
    """Every server process sweeps by itself; two of them at once still recover each job
    exactly once."""
    try:
        expected = lost_jobs(app, driver)
        deadline = time.monotonic() + 15
        while any(stored_job(app, j).status.value != s for j, s in expected.items()):
            assert time.monotonic() < deadline, "the background sweeps did not recover the jobs"
            time.sleep(0.1)
        time.sleep(0.5)  # a few more passes of both sweepers
        for job_id, status in expected.items():
            assert stored_job(app, job_id).status.value == status
            assert len(system_lines(client, job_id)) == 1
    finally:
        app.extensions["vintner_sweeper_stop"].set()


# -- a worker completing while the sweep recovers the same job ------------------------------------


def vine_args(driver: Driver, job_type: str) -> dict[str, Any]:
    """A vine without databases or caches for vine jobs, so a DEPLOY's SUCCESS finalizes with
    no outputs; nothing for other jobs."""
    if job_type in ("PLAN", "DEPLOY"):
        return {"vine_id": driver.vine(databases=0, caches=0)["id"]}
    return {}


def complete(app: Flask, worker_id: str, job_id: str, status: str = "SUCCESS") -> Any:
    """The worker's status post, as the API runs it (with its own connection)."""
    svc = app.extensions["vintner"]
    with svc.repository.transaction(readonly=True) as tx:
        worker = tx.get_worker(uuid.UUID(worker_id))
    assert worker is not None
    return jobs.update_status(svc.repository, worker, uuid.UUID(job_id),
                              status=JobStatus(status), error_message=None,
                              execution_metadata={"outputs": {}}, now=utcnow())


@pytest.mark.parametrize("job_type", ["FETCH_RESOURCES", "PLAN", "DEPLOY"])
def test_worker_completes_after_the_sweep_listed_the_job(
    app: Flask, driver: Driver, client: FlaskClient, job_type: str
) -> None:
    """Sweep reads the held jobs → the worker's SUCCESS commits → the sweep's write: the
    sweep must see it lost and do nothing."""
    args = vine_args(driver, job_type)
    worker, job = driver.claimed(job_type, **args)
    driver.status(worker, job["id"], "PROCESSING")
    age_worker(app, worker.id, 3)
    opened = 0

    def between_transactions() -> None:
        nonlocal opened
        opened += 1
        if opened == 2:  # the listing transaction is over; the per-job one is about to start
            complete(app, worker.id, job["id"])

    hooked = HookedRepository(repo(app), {})
    hooked.transaction = _counting(hooked, between_transactions)  # type: ignore[method-assign]
    report = recovery.sweep(hooked, TIMINGS, utcnow())  # type: ignore[arg-type]
    assert opened >= 2, "the forced interleaving did not happen"
    assert report.total() == 0
    assert_single_success(app, driver, client, job["id"], args.get("vine_id"))


def _counting(hooked: HookedRepository, hook: Callable[[], None]) -> Any:
    inner = hooked.transaction

    def transaction(*, readonly: bool = False) -> Any:
        hook()
        return inner(readonly=readonly)

    return transaction


def assert_single_success(app: Flask, driver: Driver, client: FlaskClient, job_id: str,
                          vine_id: str | None) -> None:
    after = driver.get_job(job_id)
    assert after["status"] == "SUCCESS" and after["worker_id"] is not None
    assert system_lines(client, job_id) == []  # no recovery line: recovery never happened
    if vine_id is not None:
        # the success's own side effect (PLAN: back to DRAFT; DEPLOY: finalized, ACTIVE)
        assert driver.get_vine(vine_id)["status"] in ("DRAFT", "ACTIVE")


@pytest.mark.parametrize("job_type", ["FETCH_RESOURCES", "DEPLOY"])
def test_stale_recovery_write_loses_to_the_committed_success(
    app: Flask, driver: Driver, client: FlaskClient, job_type: str
) -> None:
    """The compare-and-set itself: a recovery decided on a job read before the worker's SUCCESS
    committed changes nothing."""
    args = vine_args(driver, job_type)
    worker, job = driver.claimed(job_type, **args)
    driver.status(worker, job["id"], "PROCESSING")
    stale = stored_job(app, job["id"])
    complete(app, worker.id, job["id"])
    with repo(app).transaction() as tx:
        assert recovery.end_job_by_server(tx, stale, JobStatus.FAILED, "lost", utcnow()) is None
    assert_single_success(app, driver, client, job["id"], args.get("vine_id"))


@pytest.mark.parametrize("job_type", ["FETCH_RESOURCES", "PLAN", "DEPLOY"])
def test_worker_posting_while_the_sweep_writes_gets_409(
    app: Flask, driver: Driver, client: FlaskClient, job_type: str
) -> None:
    """The sweep has written its recovery and not yet committed; the worker's SUCCESS comes in
    then. It waits for the sweep's transaction and is refused: one outcome, the sweep's."""
    args = vine_args(driver, job_type)
    worker, job = driver.claimed(job_type, **args)
    driver.status(worker, job["id"], "PROCESSING")
    age_worker(app, worker.id, 3)
    outcome: dict[str, Any] = {}

    def worker_posts() -> None:
        try:
            outcome["job"] = complete(app, worker.id, job["id"])
        except Conflict as exc:
            outcome["error"] = exc

    racer = threading.Thread(target=worker_posts)

    def after_cas() -> None:
        hooked.hooks.pop("after:update_job")
        racer.start()
        time.sleep(0.5)
        assert racer.is_alive(), "the worker's post did not wait for the sweep's transaction"

    hooked = HookedRepository(repo(app), {"after:update_job": after_cas})
    report = recovery.sweep(hooked, TIMINGS, utcnow())  # type: ignore[arg-type]
    racer.join(30)
    assert not racer.is_alive()
    assert report.total() == 1
    assert "job" not in outcome and str(outcome["error"]) == NOT_HELD
    final = "FAILED" if job_type == "DEPLOY" else "QUEUED"
    assert driver.get_job(job["id"])["status"] == final
    assert len(system_lines(client, job["id"])) == 1


# -- PostgreSQL: truly concurrent transactions ----------------------------------------------------


@pytest.fixture
def pg_app(pg_url: str, tmp_path: Path) -> Iterator[Flask]:
    application = create_app(app_config(pg_url, tmp_path, **SHORT))
    yield application
    application.extensions["vintner"].repository.close()


def test_pg_worker_commits_inside_the_sweeps_transaction(pg_app: Flask) -> None:
    """PostgreSQL (READ COMMITTED): the sweep's transaction has read the job and its holder;
    before its write, the worker's SUCCESS commits on another connection. The sweep's
    compare-and-set then matches nothing. (On SQLite the sweep's write lock makes this
    interleaving impossible.)"""
    driver = Driver(pg_app.test_client())
    client = pg_app.test_client()
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.status(worker, job["id"], "PROCESSING")
    age_worker(pg_app, worker.id, 3)

    def before_cas() -> None:
        hooked.hooks.pop("before:update_job")
        run_threads(lambda: complete(pg_app, worker.id, job["id"]))  # commits, not blocked

    hooked = HookedRepository(repo(pg_app), {"before:update_job": before_cas})
    report = recovery.sweep(hooked, TIMINGS, utcnow())  # type: ignore[arg-type]
    assert "before:update_job" not in hooked.hooks, "the forced interleaving did not happen"
    assert report.total() == 0
    assert_single_success(pg_app, driver, client, job["id"], None)


def test_pg_cancel_commits_while_the_sweep_requeues(pg_app: Flask) -> None:
    """An operator's cancel commits between the sweep's read and its requeue: the job must end
    CANCELLED, not go back to the queue with a cancel request on it."""
    driver = Driver(pg_app.test_client())
    client = pg_app.test_client()
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.status(worker, job["id"], "PROCESSING")
    age_worker(pg_app, worker.id, 3)

    def before_cas() -> None:
        hooked.hooks.pop("before:update_job")
        run_threads(lambda: driver.cancel(job["id"]))

    hooked = HookedRepository(repo(pg_app), {"before:update_job": before_cas})
    report = recovery.sweep(hooked, TIMINGS, utcnow())  # type: ignore[arg-type]
    assert "before:update_job" not in hooked.hooks, "the forced interleaving did not happen"
    assert [str(j) for j in report.cancelled] == [job["id"]]
    assert driver.get_job(job["id"])["status"] == "CANCELLED"
    assert len(system_lines(client, job["id"])) == 1
    assert driver.claim(driver.worker()) is None


def test_stale_requeue_after_a_cancel_ends_cancelled(
    app: Flask, driver: Driver, client: FlaskClient
) -> None:
    """The same race on any database, at the repository level: the recovery was decided on a
    job read before the cancel request."""
    worker, job = driver.claimed("CONNECTION_TEST", cloud_identity_id=driver.identity()["id"])
    driver.status(worker, job["id"], "PROCESSING")
    stale = stored_job(app, job["id"])
    driver.cancel(job["id"])
    with repo(app).transaction() as tx:
        ended = recovery.end_job_by_server(tx, stale, JobStatus.QUEUED, "requeued", utcnow())
    assert ended is not None and ended.status == JobStatus.CANCELLED
    assert driver.get_job(job["id"])["status"] == "CANCELLED"
    assert driver.claim(driver.worker()) is None
    assert len(system_lines(client, job["id"])) == 1


# -- a plan upload streaming while the job is recovered -------------------------------------------


class RecoveringStream(io.BytesIO):
    """An upload body whose first read runs the sweep: the job is recovered mid-upload."""

    def __init__(self, app: Flask, body: bytes) -> None:
        super().__init__(body)
        self.app, self.swept = app, False

    def _sweep_once(self) -> None:
        if not self.swept:
            self.swept = True
            assert recovery.sweep(repo(self.app), TIMINGS, utcnow()).total() == 1

    def read(self, n: int | None = -1) -> bytes:
        self._sweep_once()
        return super().read(n)

    def read1(self, n: int | None = -1) -> bytes:
        self._sweep_once()
        return super().read1(n)

    def readinto(self, buffer: Any) -> int:
        self._sweep_once()
        return super().readinto(buffer)


def test_upload_that_outlives_the_holders_claim_gets_409(
    app: Flask, driver: Driver, client: FlaskClient
) -> None:
    worker, job = driver.claimed("PLAN", **vine_args(driver, "PLAN"))
    driver.status(worker, job["id"], "PROCESSING")
    age_worker(app, worker.id, 3)
    body = b"plan bytes " * 100
    stream = RecoveringStream(app, body)
    response = client.post(f"/api/jobs/{job['id']}/plan-artifact", input_stream=stream,
                           content_length=len(body),
                           headers={**worker.headers, "Content-Type": "application/octet-stream"})
    assert stream.swept, "the forced interleaving did not happen"
    assert (response.status_code, response.get_json()["error"]) == (409, NOT_HELD)
    with repo(app).transaction(readonly=True) as tx:
        assert tx.get_plan_artifact(uuid.UUID(job["id"])) is None
    assert driver.get_job(job["id"])["status"] == "QUEUED"

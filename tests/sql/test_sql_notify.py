"""Notifiers: the in-process semantics (positions, no lost wake-ups), PostgreSQL LISTEN/NOTIFY
between two independent notifiers (as two server processes would have), coalescing and
reconnection, and SQLite polling."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from backends.sql.notify import PostgresNotifier, SqlitePollingNotifier, create_notifier
from backends.sql.repository import SqlRepository
from tests.support.db import _conninfo
from vintner.domain.model import Job, JobType
from vintner.ports.notifier import JOBS_CHANNEL, LocalNotifier, logs_channel
from vintner.testing.fake_repository import FakeRepository

pytestmark = pytest.mark.timeout(60)


# -- LocalNotifier ----------------------------------------------------------------------------
def test_local_wait_times_out_without_notification() -> None:
    n = LocalNotifier()
    pos = n.position(JOBS_CHANNEL)
    t = time.monotonic()
    assert n.wait(JOBS_CHANNEL, 0.1, after=pos) == pos
    assert time.monotonic() - t >= 0.09


def test_local_no_lost_wakeup_between_read_and_wait() -> None:
    n = LocalNotifier()
    pos = n.position(JOBS_CHANNEL)
    n.notify_job_enqueued()  # happens while the waiter reads the database
    t = time.monotonic()
    assert n.wait(JOBS_CHANNEL, 5, after=pos) > pos
    assert time.monotonic() - t < 1


def test_local_wakes_a_waiting_thread_and_channels_are_separate() -> None:
    n = LocalNotifier()
    job = uuid.uuid4()
    pos = n.position(logs_channel(job))
    other = n.position(logs_channel(uuid.uuid4()))
    threading.Timer(0.05, n.notify_logs, args=(job,)).start()
    assert n.wait(logs_channel(job), 5, after=pos) > pos
    assert n.position(logs_channel(uuid.uuid4())) == other == 0


def test_local_close_releases_waiters() -> None:
    n = LocalNotifier()
    threading.Timer(0.05, n.close).start()
    t = time.monotonic()
    n.wait(JOBS_CHANNEL, 10)
    assert time.monotonic() - t < 5


def test_local_forgets_idle_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    n = LocalNotifier()
    monkeypatch.setattr(LocalNotifier, "FORGET_AFTER_S", 0.0)
    for _ in range(1100):
        n.notify_logs(uuid.uuid4())
    assert len(n._channels) < 1100


def test_fake_repository_notifier_is_local() -> None:
    assert isinstance(FakeRepository().create_notifier(), LocalNotifier)


# -- PostgreSQL -------------------------------------------------------------------------------
@pytest.fixture
def pg_pair(pg_url: str) -> Iterator[tuple[PostgresNotifier, PostgresNotifier]]:
    a, b = create_notifier(pg_url), create_notifier(pg_url)
    assert isinstance(a, PostgresNotifier) and isinstance(b, PostgresNotifier)
    assert a.ready() and b.ready()
    yield a, b
    a.close()
    b.close()


@pytest.mark.postgres
def test_pg_notify_reaches_another_notifier(
    pg_pair: tuple[PostgresNotifier, PostgresNotifier],
) -> None:
    a, b = pg_pair
    job = uuid.uuid4()
    pos_logs = b.position(logs_channel(job))
    pos_jobs = b.position(JOBS_CHANNEL)
    a.notify_logs(job)
    assert b.wait(logs_channel(job), 5, after=pos_logs) > pos_logs
    a.notify_job_enqueued()
    assert b.wait(JOBS_CHANNEL, 5, after=pos_jobs) > pos_jobs
    # ... and a channel nobody notified did not move
    assert b.position(logs_channel(uuid.uuid4())) <= pos_jobs + 2


@pytest.mark.postgres
def test_pg_bursts_are_coalesced(pg_pair: tuple[PostgresNotifier, PostgresNotifier]) -> None:
    a, b = pg_pair
    job = uuid.uuid4()
    deliveries = []
    original = b._deliver

    def counting(payload: str) -> None:
        deliveries.append(payload)
        original(payload)

    b._deliver = counting  # type: ignore[method-assign]
    pos = b.position(logs_channel(job))
    for _ in range(200):
        a.notify_logs(job)
    assert b.wait(logs_channel(job), 5, after=pos) > pos
    time.sleep(0.3)
    assert 1 <= deliveries.count(f"l:{job}") < 20
    assert all(len(p) < 64 for p in deliveries)


@pytest.mark.postgres
def test_pg_listener_reconnects_and_wakes_everyone(
    pg_url: str, pg_pair: tuple[PostgresNotifier, PostgresNotifier],
) -> None:
    a, b = pg_pair
    job = uuid.uuid4()
    pos = b.position(logs_channel(job))
    with psycopg.connect(_conninfo(pg_url), autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%%' "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    # both notifiers' listening connections (and any a finished test left in the session's
    # database: they reconnect too)
    assert len(killed) >= 2
    # the reconnect itself wakes waiters (notifications may have been lost meanwhile)
    pos = b.wait(logs_channel(job), 10, after=pos)
    assert b.ready()
    a.notify_logs(job)
    assert b.wait(logs_channel(job), 10, after=pos) > pos


# -- SQLite -----------------------------------------------------------------------------------
def test_sqlite_polling_sees_other_connections_commits(sqlite_url: str) -> None:
    waiter = create_notifier(sqlite_url, interval_s=0.05)
    assert isinstance(waiter, SqlitePollingNotifier)
    repo = SqlRepository.from_url(sqlite_url, {})
    try:
        pos = waiter.position(JOBS_CHANNEL)
        time.sleep(0.15)  # the poller has read data_version at least once
        with repo.transaction() as tx:  # another "process" enqueues, without notifying
            tx.add_job(Job(id=uuid.uuid4(), job_type=JobType.PLAN))
        t = time.monotonic()
        assert waiter.wait(JOBS_CHANNEL, 5, after=pos) > pos
        assert time.monotonic() - t < 2
        # in-process notifications are immediate
        local = repo.create_notifier()
        try:
            pos = local.position(JOBS_CHANNEL)
            local.notify_job_enqueued()
            assert local.wait(JOBS_CHANNEL, 0.01, after=pos) > pos
        finally:
            local.close()
    finally:
        waiter.close()
        repo.close()

"""Helpers for the recovery tests: reach the app's repository to move timestamps into the past
(the server's clock is the only clock, so tests age rows rather than wait), run the sweep, and
read a job's SYSTEM lines."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.app import OPERATOR, Driver, WorkerCreds
from vintner.domain import recovery
from vintner.domain.model import Job, Worker, utcnow
from vintner.ports.repository import Repository, Transaction

NOT_HELD = "Job is not held by this worker"
WORKER_LOST = recovery.WORKER_LOST
POSTABLE = ("PROCESSING", "SUCCESS", "FAILED", "CANCELLED")

__all__ = ["OPERATOR", "Driver", "WorkerCreds"]


def repo(app: Flask) -> Repository:
    return app.extensions["vintner"].repository


def services_sweep(app: Flask, now: datetime | None = None) -> recovery.SweepReport:
    """One sweep with the app's own settings, at the server's ``now``."""
    svc = app.extensions["vintner"]
    return recovery.sweep(svc.repository, svc.timings, now or utcnow())


def age_worker(app: Flask, worker_id: str, seconds: float) -> None:
    """Pretend the worker's last sign of life was ``seconds`` ago."""
    with repo(app).transaction() as tx:
        worker = tx.get_worker(uuid.UUID(worker_id), include_deleted=True)
        assert worker is not None
        worker.last_heartbeat = utcnow() - timedelta(seconds=seconds)
        tx.save_worker(worker)


def age_job(app: Flask, job_id: str, **seconds_ago: float) -> Job:
    """Move timestamps of a job (``started_at=…``, ``claimed_at=…``) into the past."""
    now = utcnow()
    changes = {name: now - timedelta(seconds=s) for name, s in seconds_ago.items()}
    with repo(app).transaction() as tx:
        job = tx.update_job(uuid.UUID(job_id), changes)
    assert job is not None
    return job


def stored_job(app: Flask, job_id: str) -> Job:
    with repo(app).transaction(readonly=True) as tx:
        job = tx.get_job(uuid.UUID(job_id))
    assert job is not None
    return job


def stored_worker(app: Flask, worker_id: str) -> Worker:
    with repo(app).transaction(readonly=True) as tx:
        worker = tx.get_worker(uuid.UUID(worker_id), include_deleted=True)
    assert worker is not None
    return worker


def logs(client: FlaskClient, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/jobs/{job_id}/logs?limit=5000", headers=OPERATOR)
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["logs"])


def system_lines(client: FlaskClient, job_id: str) -> list[str]:
    return [c["log_chunk"] for c in logs(client, job_id) if c["stream_type"] == "SYSTEM"]


def assert_error(response: Any, status: int, message: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.data[:500])
    body = response.get_json()
    assert isinstance(body, dict) and body["code"] == status and body["error"]
    if message is not None:
        assert body["error"] == message, body
    return body


class HookedTransaction:
    """A transaction that calls ``hooks["before:<method>"]`` / ``hooks["after:<method>"]``
    around the named methods: a test pauses a writer exactly between its read and its write."""

    def __init__(self, inner: Transaction, hooks: dict[str, Callable[[], None]]) -> None:
        self._inner, self._hooks = inner, hooks

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        before, after = self._hooks.get(f"before:{name}"), self._hooks.get(f"after:{name}")
        if not callable(attr) or (before is None and after is None):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before()
            result = attr(*args, **kwargs)
            if after is not None:
                after()
            return result

        return call


class HookedRepository:
    """Wraps a repository; its transactions are :class:`HookedTransaction`s. A hook may be
    removed (``hooks.pop``) once it has fired."""

    def __init__(self, inner: Repository, hooks: dict[str, Callable[[], None]]) -> None:
        self._inner, self.hooks = inner, hooks

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[HookedTransaction]:
        with self._inner.transaction(readonly=readonly) as tx:
            yield HookedTransaction(tx, self.hooks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

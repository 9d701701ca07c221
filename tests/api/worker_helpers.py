"""Helpers for the worker-API contract tests (tests/api/test_*.py).

The HTTP fixtures (``app``, ``client``, ``driver``) come from ``tests/support/app.py``. These
helpers reach the application's repository directly, for the few things an HTTP client cannot
do: read a stored row (token hashes) or move a timestamp into the past (liveness, log grace).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.app import OPERATOR, Driver, WorkerCreds
from vintner.domain.model import Job, Vine, Worker
from vintner.ports.repository import Repository

__all__ = ["OPERATOR", "Driver", "WorkerCreds"]


def repo(app: Flask) -> Repository:
    return app.extensions["vintner"].repository


def stored_worker(app: Flask, worker_id: str) -> Worker | None:
    with repo(app).transaction(readonly=True) as tx:
        return tx.get_worker(uuid.UUID(worker_id), include_deleted=True)


def stored_job(app: Flask, job_id: str) -> Job:
    with repo(app).transaction(readonly=True) as tx:
        job = tx.get_job(uuid.UUID(job_id))
    assert job is not None
    return job


def stored_vine(app: Flask, vine_id: str) -> Vine:
    with repo(app).transaction(readonly=True) as tx:
        vine = tx.get_vine(uuid.UUID(vine_id))
    assert vine is not None
    return vine


def set_last_heartbeat(app: Flask, worker_id: str, when: datetime | None) -> None:
    with repo(app).transaction() as tx:
        worker = tx.get_worker(uuid.UUID(worker_id))
        assert worker is not None
        worker.last_heartbeat = when
        tx.save_worker(worker)


def set_job_fields(app: Flask, job_id: str, **changes: Any) -> Job:
    with repo(app).transaction() as tx:
        job = tx.update_job(uuid.UUID(job_id), changes)
    assert job is not None
    return job


def put_status(client: FlaskClient, worker: WorkerCreds, job_id: str, body: Any) -> Any:
    return client.put(f"/api/jobs/{job_id}/status", json=body, headers=worker.headers)


def assert_error(response: Any, status: int, message: str | None = None) -> dict[str, Any]:
    """The response is the contract's error shape with ``status`` (and ``message``)."""
    assert response.status_code == status, (response.status_code, response.data[:500])
    assert response.mimetype == "application/json", response.mimetype
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    assert body["code"] == status
    if message is not None:
        assert body["error"] == message, body
    return body


def contains_key(value: Any, key: str) -> bool:
    """``key`` appears as an object key anywhere in a JSON value."""
    if isinstance(value, dict):
        return key in value or any(contains_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(contains_key(v, key) for v in value)
    return False

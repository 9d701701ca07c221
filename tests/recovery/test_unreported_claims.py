"""A live worker's heartbeat that reports ``current_job_id`` releases CLAIMED jobs it holds but
is not running (a lost claim response, or an agent restarted under the same id)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.app import OPERATOR, Driver
from vintner.domain.model import utcnow


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"worker_offline_after_s": 5}


def _age_claim(app: Flask, job_id: str, seconds: float) -> None:
    repo = app.extensions["vintner"].repository
    with repo.transaction() as tx:
        tx.update_job(uuid.UUID(job_id), {"claimed_at": utcnow() - timedelta(seconds=seconds)})


def test_idle_heartbeat_requeues_an_old_unreported_claim(app: Flask, driver: Driver) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("PLAN", vine_id=vine["id"])
    # a fresh claim is left alone: the agent may not have started it yet
    driver.heartbeat(worker, current_job_id=None)
    assert driver.get_job(job["id"])["status"] == "CLAIMED"
    _age_claim(app, job["id"], 30)
    # a heartbeat that does not report current_job_id changes nothing (older agents)
    driver.heartbeat(worker)
    assert driver.get_job(job["id"])["status"] == "CLAIMED"
    driver.heartbeat(worker, current_job_id=None)
    released = driver.get_job(job["id"])
    assert (released["status"], released["worker_id"], released["attempts"]) == (
        "QUEUED", None, 1)
    assert driver.get_vine(vine["id"])["status"] == "QUEUED"
    # the same worker (restarted) gets it again, as a new attempt
    assert driver.claim(worker)["job"]["attempts"] == 2


def test_the_reported_job_and_processing_jobs_are_kept(app: Flask, driver: Driver) -> None:
    worker, job = driver.claimed("PLAN", vine_id=driver.vine()["id"])
    _age_claim(app, job["id"], 30)
    driver.heartbeat(worker, current_job_id=job["id"])
    assert driver.get_job(job["id"])["status"] == "CLAIMED"
    driver.status(worker, job["id"], "PROCESSING")
    _age_claim(app, job["id"], 30)
    driver.heartbeat(worker, current_job_id=None)
    assert driver.get_job(job["id"])["status"] == "PROCESSING"


def test_released_claim_fences_the_old_response(
    app: Flask, driver: Driver, client: FlaskClient
) -> None:
    worker, job = driver.claimed("PLAN", vine_id=driver.vine()["id"])
    _age_claim(app, job["id"], 30)
    driver.heartbeat(worker, current_job_id=None)
    late = client.put(f"/api/jobs/{job['id']}/status", json={"status": "PROCESSING"},
                      headers=worker.headers)
    assert late.status_code == 409
    assert late.get_json()["error"] == "Job is not held by this worker"
    logs = client.get(f"/api/jobs/{job['id']}/logs", headers=OPERATOR).get_json()["logs"]
    assert any("not running the job" in c["log_chunk"] for c in logs
               if c["stream_type"] == "SYSTEM")

"""operations.md "Operator API" (cancel) as the worker sees it: the heartbeat's
``cancel_requested`` list and the ``X-Vintner-Cancel-Requested`` header on log and status
responses; recovery of a cancelled job whose holder is gone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.worker_helpers import (
    OPERATOR,
    Driver,
    assert_error,
    put_status,
    repo,
    set_last_heartbeat,
)
from vintner.domain import recovery
from vintner.domain.liveness import Timings

HEADER = "X-Vintner-Cancel-Requested"


def test_cancel_queued_job_at_once(driver: Driver) -> None:
    job = driver.enqueue("FETCH_RESOURCES")
    body = driver.cancel(job["id"])
    assert body["success"] is True
    assert body["job"]["status"] == "CANCELLED"
    assert body["job"]["completed_at"] is not None
    assert driver.get_job(job["id"])["status"] == "CANCELLED"
    assert driver.claim(driver.worker()) is None


@pytest.mark.parametrize("processing", [False, True])
def test_cancel_held_job_is_a_request(driver: Driver, client: FlaskClient,
                                      processing: bool) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("DEPLOY", vine_id=vine["id"])
    if processing:
        driver.status(worker, job["id"], "PROCESSING")
    status = "PROCESSING" if processing else "CLAIMED"

    # before the request: no header, nothing to cancel
    log = client.post(f"/api/jobs/{job['id']}/logs", json={"log_chunk": "a\n", "seq": 0},
                      headers=worker.headers)
    assert log.status_code == 201 and HEADER not in log.headers
    assert driver.heartbeat(worker)["cancel_requested"] == []
    assert driver.get_job(job["id"])["cancel_requested"] is False

    body = driver.cancel(job["id"])
    assert body["job"]["status"] == status
    assert body["job"]["cancel_requested"] is True
    assert driver.get_job(job["id"])["status"] == status

    assert driver.heartbeat(worker)["cancel_requested"] == [job["id"]]
    log = client.post(f"/api/jobs/{job['id']}/logs", json={"log_chunk": "b\n", "seq": 1},
                      headers=worker.headers)
    assert log.status_code == 201 and log.headers[HEADER] == "true"
    dup = client.post(f"/api/jobs/{job['id']}/logs", json={"log_chunk": "b\n", "seq": 1},
                      headers=worker.headers)
    assert dup.status_code == 200 and dup.headers[HEADER] == "true"
    progress = put_status(client, worker, job["id"], {"status": "PROCESSING"})
    assert progress.status_code == 200 and progress.headers[HEADER] == "true"

    # the holder stops and confirms
    done = put_status(client, worker, job["id"], {"status": "CANCELLED"})
    assert done.status_code == 200
    assert done.get_json()["job"]["status"] == "CANCELLED"
    assert driver.heartbeat(worker)["cancel_requested"] == []
    # it was PROCESSING when cancelled (the PROCESSING post above): mid-run for a DEPLOY
    assert driver.get_vine(vine["id"])["status"] == "FAILED"


def test_header_absent_for_other_jobs(driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    other_worker, other_job = driver.claimed("FETCH_RESOURCES")
    driver.cancel(other_job["id"])
    response = put_status(client, worker, job["id"], {"status": "PROCESSING"})
    assert response.status_code == 200 and HEADER not in response.headers
    assert driver.heartbeat(worker)["cancel_requested"] == []
    assert driver.heartbeat(other_worker)["cancel_requested"] == [other_job["id"]]


def test_cancel_twice_keeps_the_request(driver: Driver) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.cancel(job["id"])
    again = driver.cancel(job["id"])
    assert again["job"]["cancel_requested"] is True
    assert driver.heartbeat(worker)["cancel_requested"] == [job["id"]]


@pytest.mark.parametrize("terminal", ["SUCCESS", "FAILED", "CANCELLED"])
def test_cancel_terminal_is_409(driver: Driver, client: FlaskClient, terminal: str) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.status(worker, job["id"], terminal)
    body = assert_error(client.post(f"/api/jobs/{job['id']}/cancel", headers=OPERATOR), 409)
    assert terminal in body["error"]
    assert driver.get_job(job["id"])["status"] == terminal


def test_cancel_unknown_job_is_404(client: FlaskClient) -> None:
    assert_error(client.post(f"/api/jobs/{uuid.uuid4()}/cancel", headers=OPERATOR), 404)


def test_worker_may_still_finish_a_cancel_requested_job(driver: Driver) -> None:
    """The apply finished before the agent saw the request: its SUCCESS stands."""
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.cancel(job["id"])
    assert driver.status(worker, job["id"], "SUCCESS")["job"]["status"] == "SUCCESS"


def test_cancel_of_job_with_offline_holder_completes(app: Flask, driver: Driver,
                                                     client: FlaskClient) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("PLAN", vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    driver.cancel(job["id"])
    now = datetime.now(UTC)
    set_last_heartbeat(app, worker.id, now - timedelta(minutes=10))
    recovery.sweep(repo(app), Timings(), now)
    assert driver.get_job(job["id"])["status"] == "CANCELLED"
    assert driver.get_vine(vine["id"])["status"] == "DRAFT"  # a PLAN goes back
    assert_error(put_status(client, worker, job["id"], {"status": "CANCELLED"}), 409,
                 "Job is not held by this worker")

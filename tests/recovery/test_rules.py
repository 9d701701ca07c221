"""operations.md "Liveness and recovery", one rule at a time, with short timings and rows aged
through the repository (the server's clock is the only clock, so tests age rows instead of
waiting). Runs on the selected database (``VINTNER_TEST_DATABASE=postgresql`` for PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.recovery.helpers import (
    NOT_HELD,
    OPERATOR,
    POSTABLE,
    WORKER_LOST,
    Driver,
    WorkerCreds,
    age_job,
    age_worker,
    assert_error,
    services_sweep,
    stored_job,
    stored_worker,
    system_lines,
)
from vintner.domain.model import utcnow

SHORT = {"worker_offline_after_s": 1, "job_recovery_after_s": 2, "job_timeout_s": 5,
         "log_tail_grace_s": 2}
CANCEL_HEADER = "X-Vintner-Cancel-Requested"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return dict(SHORT)


def enqueue_args(driver: Driver, job_type: str) -> dict[str, Any]:
    if job_type in ("PLAN", "DEPLOY", "DESTROY"):
        return {"vine_id": driver.vine()["id"]}
    if job_type == "CONNECTION_TEST":
        return {"cloud_identity_id": driver.identity()["id"]}
    return {}


def worker_status(client: FlaskClient, worker_id: str, headers: dict[str, str]) -> str:
    response = client.get(f"/api/workers/{worker_id}", headers=headers)
    assert response.status_code == 200
    return str(response.get_json()["status"])


def listed_status(client: FlaskClient, worker_id: str) -> str:
    listing = client.get("/api/workers?limit=100", headers=OPERATOR).get_json()
    return str({w["id"]: w["status"] for w in listing["workers"]}[worker_id])


# -- worker liveness ----------------------------------------------------------------------------


def test_offline_from_the_server_clock_then_written_by_the_sweep(
    app: Flask, driver: Driver, client: FlaskClient
) -> None:
    worker = driver.worker()
    assert driver.heartbeat(worker)["status"] == "ONLINE"
    age_worker(app, worker.id, 0.5)
    assert worker_status(client, worker.id, OPERATOR) == "ONLINE"

    age_worker(app, worker.id, 1.5)  # past worker_offline_after_s = 1; no sweep has run
    assert stored_worker(app, worker.id).status.value == "ONLINE"
    assert worker_status(client, worker.id, OPERATOR) == "OFFLINE"
    assert worker_status(client, worker.id, worker.headers) == "OFFLINE"
    assert listed_status(client, worker.id) == "OFFLINE"

    report = services_sweep(app)
    assert [str(w) for w in report.workers_marked_offline] == [worker.id]
    assert stored_worker(app, worker.id).status.value == "OFFLINE"
    assert services_sweep(app).workers_marked_offline == []  # written once
    # a heartbeat (or a claim) brings it back
    assert driver.heartbeat(worker)["status"] == "ONLINE"
    assert listed_status(client, worker.id) == "ONLINE"


def test_draining_as_the_heartbeat_asks(app: Flask, driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.status(worker, job["id"], "PROCESSING")
    assert driver.heartbeat(worker, status="DRAINING")["status"] == "DRAINING"
    assert worker_status(client, worker.id, OPERATOR) == "DRAINING"
    waiting = driver.enqueue("FETCH_RESOURCES")
    assert driver.claim(worker) is None  # no new job while draining
    services_sweep(app)
    assert stored_job(app, job["id"]).status.value == "PROCESSING"  # its job is left alone
    driver.status(worker, job["id"], "SUCCESS")
    age_worker(app, worker.id, 1.5)
    assert listed_status(client, worker.id) == "OFFLINE"
    assert worker.id in [str(w) for w in services_sweep(app).workers_marked_offline]
    assert driver.heartbeat(worker, status="ONLINE")["status"] == "ONLINE"
    assert driver.claim(worker)["job"]["id"] == waiting["id"]


# -- CLAIMED and re-runnable jobs ---------------------------------------------------------------


def test_claimed_job_of_a_lost_holder_is_requeued(
    app: Flask, driver: Driver, client: FlaskClient
) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("PLAN", vine_id=vine["id"])
    age_worker(app, worker.id, 1.5)  # OFFLINE, but not yet gone for job_recovery_after_s
    assert services_sweep(app).total() == 0
    assert stored_job(app, job["id"]).status.value == "CLAIMED"

    age_worker(app, worker.id, 2.5)
    report = services_sweep(app)
    assert [str(j) for j in report.requeued] == [job["id"]]
    after = driver.get_job(job["id"])
    assert (after["status"], after["worker_id"], after["attempts"], after["claimed_at"]) == (
        "QUEUED", None, 1, None)
    assert driver.get_vine(vine["id"])["status"] == "QUEUED"
    assert system_lines(client, job["id"]) == [
        "[vintner] requeued after attempt 1 of 3: no heartbeat from the worker for 2 s\n"]

    second = driver.worker()
    claim = driver.claim(second)
    assert claim is not None and claim["job"]["id"] == job["id"] and claim["job"]["attempts"] == 2
    driver.status(second, job["id"], "SUCCESS")
    assert driver.get_vine(vine["id"])["status"] == "DRAFT"  # a PLAN's success: back to before


@pytest.mark.parametrize("job_type", ["PLAN", "CONNECTION_TEST", "FETCH_RESOURCES"])
def test_rerunnable_job_requeued_while_attempts_remain_then_failed(
    app: Flask, driver: Driver, client: FlaskClient, job_type: str
) -> None:
    args = enqueue_args(driver, job_type)
    job = driver.enqueue(job_type, **args)
    for attempt in (1, 2, 3):
        worker = driver.worker()
        claim = driver.claim(worker)
        assert claim is not None and claim["job"]["id"] == job["id"]
        assert claim["job"]["attempts"] == attempt
        driver.status(worker, job["id"], "PROCESSING", execution_metadata={"try": attempt})
        driver.log(worker, job["id"], f"attempt {attempt}\n", seq=attempt * 1000)
        age_worker(app, worker.id, 3)
        report = services_sweep(app)
        after = driver.get_job(job["id"])
        assert after["worker_id"] is None
        if attempt < 3:
            assert [str(j) for j in report.requeued] == [job["id"]]
            assert (after["status"], after["started_at"]) == ("QUEUED", None)
        else:
            assert [str(j) for j in report.failed] == [job["id"]]
            assert after["status"] == "FAILED"
            assert after["error_message"] == (
                "gave up after 3 attempts (no heartbeat from the worker for 2 s)")
            assert after["completed_at"] is not None
    assert system_lines(client, job["id"]) == [
        "[vintner] requeued after attempt 1 of 3: no heartbeat from the worker for 2 s\n",
        "[vintner] requeued after attempt 2 of 3: no heartbeat from the worker for 2 s\n",
        "[vintner] gave up after 3 attempts (no heartbeat from the worker for 2 s)\n",
    ]
    if "vine_id" in args:
        vine = driver.get_vine(args["vine_id"])
        assert (vine["status"], vine["status_message"]) == ("FAILED", after["error_message"])
    assert driver.claim(driver.worker()) is None  # nothing left to run


@pytest.mark.parametrize("job_type", ["DEPLOY", "DESTROY", "FETCH_RESOURCES"])
def test_claimed_job_is_requeued_whatever_its_type(
    app: Flask, driver: Driver, job_type: str
) -> None:
    """CLAIMED means nothing ran yet: even a DEPLOY goes back to the queue."""
    worker, job = driver.claimed(job_type, **enqueue_args(driver, job_type))
    age_worker(app, worker.id, 3)
    assert [str(j) for j in services_sweep(app).requeued] == [job["id"]]
    assert driver.get_job(job["id"])["status"] == "QUEUED"


# -- jobs that change infrastructure ------------------------------------------------------------


@pytest.mark.parametrize(
    "job_type", ["DEPLOY", "DESTROY", "DEPLOY_WORKER", "UPDATE_WORKER", "DESTROY_WORKER"])
def test_interrupted_apply_is_failed_never_rerun(
    app: Flask, driver: Driver, client: FlaskClient, job_type: str
) -> None:
    args = enqueue_args(driver, job_type)
    worker, job = driver.claimed(job_type, **args)
    driver.status(worker, job["id"], "PROCESSING")
    age_worker(app, worker.id, 3)
    report = services_sweep(app)
    assert [str(j) for j in report.failed] == [job["id"]]
    after = driver.get_job(job["id"])
    message = f"{WORKER_LOST} (no heartbeat from the worker for 2 s)"
    assert (after["status"], after["worker_id"], after["error_message"]) == (
        "FAILED", None, message)
    assert after["attempts"] == 1  # attempts remained; an apply is still never re-run
    assert system_lines(client, job["id"]) == [f"[vintner] {message}\n"]
    if "vine_id" in args:
        vine = driver.get_vine(args["vine_id"])
        assert (vine["status"], vine["status_message"]) == ("FAILED", message)
    assert driver.claim(driver.worker()) is None


# -- timeout ------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_type", ["FETCH_RESOURCES", "DEPLOY"])
def test_processing_longer_than_job_timeout_is_failed(
    app: Flask, driver: Driver, client: FlaskClient, job_type: str
) -> None:
    args = enqueue_args(driver, job_type)
    worker, job = driver.claimed(job_type, **args)
    driver.status(worker, job["id"], "PROCESSING")
    age_job(app, job["id"], started_at=4)
    driver.heartbeat(worker)  # the worker is alive: only the timeout can apply
    assert services_sweep(app).total() == 0
    age_job(app, job["id"], started_at=6)  # job_timeout_s = 5
    driver.heartbeat(worker)
    report = services_sweep(app)
    assert [str(j) for j in report.failed] == [job["id"]]
    after = driver.get_job(job["id"])
    assert (after["status"], after["worker_id"], after["error_message"]) == (
        "FAILED", None, "timed out after 5 s of processing")
    assert system_lines(client, job["id"]) == ["[vintner] timed out after 5 s of processing\n"]
    if "vine_id" in args:
        assert driver.get_vine(args["vine_id"])["status_message"] == after["error_message"]
    # the worker is still fine, but this job is no longer its own
    assert_error(client.put(f"/api/jobs/{job['id']}/status", json={"status": "SUCCESS"},
                            headers=worker.headers), 409, NOT_HELD)


def test_claimed_job_has_no_processing_timeout(app: Flask, driver: Driver) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    age_job(app, job["id"], claimed_at=60)
    driver.heartbeat(worker)
    assert services_sweep(app).total() == 0
    assert stored_job(app, job["id"]).status.value == "CLAIMED"


# -- cancellation -------------------------------------------------------------------------------


def test_cancel_reaches_a_live_holder_and_the_sweep_leaves_it(
    app: Flask, driver: Driver, client: FlaskClient
) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.status(worker, job["id"], "PROCESSING")
    assert driver.cancel(job["id"])["job"]["cancel_requested"] is True
    assert driver.heartbeat(worker)["cancel_requested"] == [job["id"]]
    log = client.post(f"/api/jobs/{job['id']}/logs", json={"log_chunk": "x", "seq": 1},
                      headers=worker.headers)
    assert log.status_code == 201 and log.headers[CANCEL_HEADER] == "true"
    assert services_sweep(app).total() == 0  # the holder is alive: it cancels itself
    status = client.put(f"/api/jobs/{job['id']}/status", json={"status": "CANCELLED"},
                        headers=worker.headers)
    assert status.status_code == 200 and status.headers[CANCEL_HEADER] == "true"
    assert status.get_json()["job"]["status"] == "CANCELLED"
    assert driver.heartbeat(worker)["cancel_requested"] == []


@pytest.mark.parametrize("job_type,vine_after", [("PLAN", "DRAFT"), ("DEPLOY", "FAILED"),
                                                 ("FETCH_RESOURCES", None)])
def test_cancel_completes_once_the_holder_is_offline(
    app: Flask, driver: Driver, client: FlaskClient, job_type: str, vine_after: str | None
) -> None:
    args = enqueue_args(driver, job_type)
    worker, job = driver.claimed(job_type, **args)
    driver.status(worker, job["id"], "PROCESSING")
    driver.cancel(job["id"])
    age_worker(app, worker.id, 1.5)  # OFFLINE (1 s), well before job_recovery_after_s (2 s)
    report = services_sweep(app)
    assert [str(j) for j in report.cancelled] == [job["id"]]
    after = driver.get_job(job["id"])
    assert (after["status"], after["worker_id"]) == ("CANCELLED", None)
    assert after["completed_at"] is not None
    assert system_lines(client, job["id"]) == [
        "[vintner] cancelled: the cancel was requested and the worker is offline "
        "(no heartbeat for 1 s)\n"]
    if vine_after is not None:
        vine = driver.get_vine(args["vine_id"])
        assert vine["status"] == vine_after
        if job_type == "DEPLOY":
            assert "cancelled while running" in vine["status_message"]
    assert_error(client.put(f"/api/jobs/{job['id']}/status", json={"status": "CANCELLED"},
                            headers=worker.headers), 409, NOT_HELD)


# -- the lost worker is fenced off --------------------------------------------------------------


def late_writes_are_refused(client: FlaskClient, worker: WorkerCreds, job_id: str) -> None:
    for status in POSTABLE:
        assert_error(client.put(f"/api/jobs/{job_id}/status", json={"status": status},
                                headers=worker.headers), 409, NOT_HELD)
    for body in ({"log_chunk": "late\n"}, {"log_chunk": "late\n", "seq": 99}):
        assert_error(client.post(f"/api/jobs/{job_id}/logs", json=body, headers=worker.headers),
                     409, NOT_HELD)
    assert_error(client.post(f"/api/jobs/{job_id}/plan-artifact", data=b"plan bytes",
                             headers={**worker.headers,
                                      "Content-Type": "application/octet-stream"}),
                 409, NOT_HELD)
    assert_error(client.get(f"/api/jobs/{job_id}", headers=worker.headers), 404)


def test_lost_worker_gets_409_on_every_write(
    app: Flask, driver: Driver, client: FlaskClient
) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("DEPLOY", vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    driver.log(worker, job["id"], "applying\n", seq=0)
    age_worker(app, worker.id, 3)
    services_sweep(app)
    before = driver.get_job(job["id"])
    lines_before = system_lines(client, job["id"])
    late_writes_are_refused(client, worker, job["id"])
    assert driver.get_job(job["id"]) == before  # nothing the lost worker sent changed it
    assert system_lines(client, job["id"]) == lines_before
    assert driver.get_vine(vine["id"])["status"] == "FAILED"
    assert driver.heartbeat(worker)["success"] is True  # it lost the job, not its registration


def test_lost_worker_is_fenced_while_the_new_holder_runs(
    app: Flask, driver: Driver, client: FlaskClient
) -> None:
    vine = driver.vine()
    first, job = driver.claimed("PLAN", vine_id=vine["id"])
    driver.status(first, job["id"], "PROCESSING")
    age_worker(app, first.id, 3)
    services_sweep(app)
    second = driver.worker()
    assert driver.claim(second)["job"]["id"] == job["id"]
    driver.status(second, job["id"], "PROCESSING")
    late_writes_are_refused(client, first, job["id"])  # the first comes back and tries
    driver.log(second, job["id"], "planning\n", seq=100_000_000)
    upload = client.post(f"/api/jobs/{job['id']}/plan-artifact", data=b"second's plan",
                         headers={**second.headers, "Content-Type": "application/octet-stream"})
    assert upload.status_code == 201
    assert driver.status(second, job["id"], "SUCCESS")["job"]["worker_id"] == second.id
    # the tail grace belongs to the worker that ended the job, not the lost one
    driver.log(second, job["id"], "tail\n", seq=100_000_001)
    assert_error(client.post(f"/api/jobs/{job['id']}/logs", json={"log_chunk": "x"},
                             headers=first.headers), 409, NOT_HELD)


# -- tokens ---------------------------------------------------------------------------------------


def test_rotated_token_mid_job(app: Flask, driver: Driver, client: FlaskClient) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.status(worker, job["id"], "PROCESSING")
    rotated = client.post(f"/api/workers/{worker.id}/rotate-token", headers=OPERATOR)
    assert rotated.status_code == 200
    new = WorkerCreds(worker.id, rotated.get_json()["worker_token"])
    # the old token stops working on its very next request, whatever it is
    for response in (
        client.post("/api/workers/heartbeat", json={}, headers=worker.headers),
        client.post(f"/api/jobs/{job['id']}/logs", json={"log_chunk": "x"},
                    headers=worker.headers),
        client.put(f"/api/jobs/{job['id']}/status", json={"status": "SUCCESS"},
                   headers=worker.headers),
        client.post("/api/jobs/claim", headers=worker.headers),
    ):
        assert_error(response, 401, "Invalid worker ID or token")
    # the worker keeps its job with the new token: liveness is per worker, not per token
    driver.heartbeat(new)
    assert services_sweep(app).total() == 0
    driver.log(new, job["id"], "still mine\n", seq=1)
    assert driver.status(new, job["id"], "SUCCESS")["job"]["status"] == "SUCCESS"


def test_revoked_worker_mid_deploy(app: Flask, driver: Driver, client: FlaskClient) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("DEPLOY", vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    assert client.delete(f"/api/workers/{worker.id}", headers=OPERATOR).status_code == 204
    after = driver.get_job(job["id"])
    message = f"{WORKER_LOST} (the worker was deleted)"
    assert (after["status"], after["error_message"]) == ("FAILED", message)
    assert system_lines(client, job["id"]) == [f"[vintner] {message}\n"]
    assert driver.get_vine(vine["id"])["status"] == "FAILED"
    assert_error(client.put(f"/api/jobs/{job['id']}/status", json={"status": "SUCCESS"},
                            headers=worker.headers), 401)
    assert services_sweep(app).total() == 0  # recovered once, by the revoke


# -- the server's clock only -----------------------------------------------------------------


def test_an_agent_clock_hours_off_changes_nothing(
    app: Flask, driver: Driver, client: FlaskClient
) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    skewed = {"server_time": "2001-01-01T00:00:00+00:00",
              "last_heartbeat": "2001-01-01T00:00:00+00:00",
              "now": (utcnow() + timedelta(hours=7)).isoformat()}
    http_date = {"Date": "Mon, 01 Jan 2001 00:00:00 GMT"}
    response = client.post("/api/workers/heartbeat", json={"version": "9.9.9", **skewed},
                           headers={**worker.headers, **http_date})
    assert response.status_code == 200
    client.put(f"/api/jobs/{job['id']}/status",
               json={"status": "PROCESSING", "started_at": skewed["server_time"],
                     "completed_at": skewed["now"]},
               headers={**worker.headers, **http_date})
    stored = stored_job(app, job["id"])
    assert stored.started_at is not None and abs(stored.started_at - utcnow()) < timedelta(
        seconds=30)
    assert stored.completed_at is None
    heartbeat = stored_worker(app, worker.id).last_heartbeat
    assert heartbeat is not None and abs(heartbeat - utcnow()) < timedelta(seconds=30)
    assert worker_status(client, worker.id, OPERATOR) == "ONLINE"
    assert services_sweep(app).total() == 0
    # ...and the server's own clock moving on is what recovers the job
    assert [str(j) for j in services_sweep(app, utcnow() + timedelta(seconds=3)).requeued] == [
        job["id"]]

"""worker-api.md "Job status": every allowed and refused transition, idempotent retries,
timestamps, metadata merge, limits, 404/409."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.worker_helpers import (
    Driver,
    WorkerCreds,
    assert_error,
    put_status,
    repo,
    set_last_heartbeat,
    stored_job,
)
from vintner.domain import recovery
from vintner.domain.liveness import Timings

POSTABLE = ["PROCESSING", "SUCCESS", "FAILED", "CANCELLED"]
TERMINAL = ["SUCCESS", "FAILED", "CANCELLED"]
NOT_HELD = "Job is not held by this worker"


def held_job(driver: Driver, job_type: str = "FETCH_RESOURCES",
             processing: bool = False) -> tuple[WorkerCreds, dict[str, Any]]:
    worker, job = driver.claimed(job_type)
    if processing:
        job = driver.status(worker, job["id"], "PROCESSING")["job"]
    return worker, job


# -- allowed transitions --------------------------------------------------------------------


@pytest.mark.parametrize("start", ["CLAIMED", "PROCESSING"])
@pytest.mark.parametrize("target", POSTABLE)
def test_allowed_transition(driver: Driver, client: FlaskClient, start: str,
                            target: str) -> None:
    worker, job = held_job(driver, processing=start == "PROCESSING")
    assert job["status"] == start
    response = put_status(client, worker, job["id"], {"status": target})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["success"] is True
    assert body["job"]["id"] == job["id"]
    assert body["job"]["status"] == target
    assert body["job"]["worker_id"] == worker.id
    assert driver.get_job(job["id"])["status"] == target
    if target in TERMINAL:
        assert body["job"]["completed_at"] is not None
    else:
        assert body["job"]["completed_at"] is None


# -- refused transitions --------------------------------------------------------------------


@pytest.mark.parametrize("start,target", [(s, t) for s in TERMINAL for t in POSTABLE
                                           if s != t])
def test_terminal_is_final(driver: Driver, client: FlaskClient, start: str,
                           target: str) -> None:
    """Out of a terminal status only the same status again (the retry tested below)."""
    worker, job = held_job(driver)
    driver.status(worker, job["id"], start)
    before = driver.get_job(job["id"])
    body = assert_error(put_status(client, worker, job["id"], {"status": target}), 409)
    assert start in body["error"]  # names the current status
    assert driver.get_job(job["id"]) == before


@pytest.mark.parametrize("value", ["QUEUED", "CLAIMED", "success", "Processing", "", "DONE",
                                   None, 1, True, ["SUCCESS"], {"s": "SUCCESS"}])
def test_invalid_status_value_is_400(driver: Driver, client: FlaskClient, value: Any) -> None:
    worker, job = held_job(driver)
    body = assert_error(put_status(client, worker, job["id"], {"status": value}), 400)
    assert "status" in body.get("errors", {})
    assert driver.get_job(job["id"])["status"] == "CLAIMED"


@pytest.mark.parametrize("body", [{}, {"error_message": "x"}, [], "SUCCESS"])
def test_status_required(driver: Driver, client: FlaskClient, body: Any) -> None:
    worker, job = held_job(driver)
    assert_error(put_status(client, worker, job["id"], body), 400)


def test_malformed_json_is_400(driver: Driver, client: FlaskClient) -> None:
    worker, job = held_job(driver)
    assert_error(client.put(f"/api/jobs/{job['id']}/status", data='{"status": ',
                            content_type="application/json", headers=worker.headers), 400)


@pytest.mark.parametrize("field,value", [("execution_metadata", [1]),
                                         ("execution_metadata", "text"),
                                         ("error_message", 12),
                                         ("error_message", {"a": 1})])
def test_wrong_field_types_are_400(driver: Driver, client: FlaskClient, field: str,
                                   value: Any) -> None:
    worker, job = held_job(driver)
    body = assert_error(put_status(client, worker, job["id"], {"status": "PROCESSING",
                                                               field: value}), 400)
    assert field in body["errors"]


def test_unknown_fields_are_ignored(driver: Driver, client: FlaskClient) -> None:
    worker, job = held_job(driver)
    response = put_status(client, worker, job["id"], {"status": "PROCESSING",
                                                      "progress_pct": 10, "x": {"y": 1}})
    assert response.status_code == 200


# -- idempotent retries ---------------------------------------------------------------------


@pytest.mark.parametrize("terminal", TERMINAL)
def test_terminal_retry_reapplies_nothing(app: Flask, driver: Driver, client: FlaskClient,
                                          terminal: str) -> None:
    worker, job = held_job(driver, processing=True)
    first = driver.status(worker, job["id"], terminal, error_message="first",
                          execution_metadata={"a": 1})["job"]
    stored_before = stored_job(app, job["id"])
    retry = put_status(client, worker, job["id"], {
        "status": terminal, "error_message": "second", "execution_metadata": {"a": 2, "b": 3}})
    assert retry.status_code == 200, retry.get_json()
    body = retry.get_json()
    assert body["success"] is True
    assert body["job"] == first
    assert stored_job(app, job["id"]) == stored_before
    assert stored_before.execution_metadata == {"a": 1}
    assert stored_before.error_message == "first"


def test_terminal_retry_keeps_completed_at(driver: Driver) -> None:
    worker, job = held_job(driver)
    done = driver.status(worker, job["id"], "SUCCESS")["job"]
    again = driver.status(worker, job["id"], "SUCCESS")["job"]
    assert again["completed_at"] == done["completed_at"]
    assert again["updated_at"] == done["updated_at"]


def test_failed_retry_does_not_touch_the_vine_again(driver: Driver) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("PLAN", vine_id=vine["id"])
    driver.status(worker, job["id"], "FAILED", error_message="plan exploded")
    failed_vine = driver.get_vine(vine["id"])
    assert failed_vine["status_message"] == "plan exploded"
    driver.status(worker, job["id"], "FAILED", error_message="something else")
    assert driver.get_vine(vine["id"]) == failed_vine


# -- timestamps -----------------------------------------------------------------------------


def test_started_at_on_first_processing_only(driver: Driver) -> None:
    worker, job = held_job(driver)
    assert job["started_at"] is None and job["completed_at"] is None
    first = driver.status(worker, job["id"], "PROCESSING")["job"]
    assert first["started_at"] is not None
    second = driver.status(worker, job["id"], "PROCESSING",
                           execution_metadata={"phase": "apply"})["job"]
    assert second["started_at"] == first["started_at"]
    done = driver.status(worker, job["id"], "SUCCESS")["job"]
    assert done["started_at"] == first["started_at"]
    started = datetime.fromisoformat(first["started_at"])
    completed = datetime.fromisoformat(done["completed_at"])
    assert started.utcoffset() is not None and completed.utcoffset() is not None
    assert started <= completed <= datetime.now(UTC) + timedelta(seconds=1)


def test_completed_at_on_terminal(driver: Driver) -> None:
    worker, job = held_job(driver)
    done = driver.status(worker, job["id"], "CANCELLED")["job"]
    assert done["completed_at"] is not None
    assert done["started_at"] is None


# -- error message and metadata -------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"error_message": None}, {"error_message": ""}])
def test_failed_without_message_stores_a_generic_one(driver: Driver,
                                                     body: dict[str, Any]) -> None:
    worker, job = held_job(driver)
    failed = driver.status(worker, job["id"], "FAILED", **body)["job"]
    assert isinstance(failed["error_message"], str) and failed["error_message"].strip()


def test_failed_keeps_the_message(driver: Driver) -> None:
    worker, job = held_job(driver)
    failed = driver.status(worker, job["id"], "FAILED", error_message="terraform exited 1")["job"]
    assert failed["error_message"] == "terraform exited 1"
    assert driver.get_job(job["id"])["error_message"] == "terraform exited 1"


def test_execution_metadata_shallow_merge(driver: Driver) -> None:
    worker, job = held_job(driver)
    driver.status(worker, job["id"], "PROCESSING",
                  execution_metadata={"phase": "init", "progress": {"a": 1}, "keep": True})
    driver.status(worker, job["id"], "PROCESSING",
                  execution_metadata={"phase": "plan", "progress": {"b": 2}})
    driver.status(worker, job["id"], "PROCESSING")  # no metadata: nothing changes
    done = driver.status(worker, job["id"], "SUCCESS",
                         execution_metadata={"plan_summary": {"add": 3}})["job"]
    expected = {"phase": "plan", "progress": {"b": 2}, "keep": True,
                "plan_summary": {"add": 3}}
    assert done["execution_metadata"] == expected
    assert driver.get_job(job["id"])["execution_metadata"] == expected


def test_execution_metadata_over_1_mib_is_413(driver: Driver, client: FlaskClient) -> None:
    worker, job = held_job(driver)
    big = {"blob": "x" * (1024 * 1024)}
    assert_error(put_status(client, worker, job["id"], {"status": "SUCCESS",
                                                        "execution_metadata": big}), 413)
    after = driver.get_job(job["id"])
    assert after["status"] == "CLAIMED" and after["execution_metadata"] == {}
    # just under the limit is fine
    fits = {"blob": "x" * (1024 * 1024 - 100)}
    assert put_status(client, worker, job["id"], {"status": "PROCESSING",
                                                  "execution_metadata": fits}).status_code == 200


def test_error_message_over_64_kib_is_413(driver: Driver, client: FlaskClient) -> None:
    worker, job = held_job(driver)
    assert_error(put_status(client, worker, job["id"], {
        "status": "FAILED", "error_message": "e" * (64 * 1024 + 1)}), 413)
    assert driver.get_job(job["id"])["status"] == "CLAIMED"
    exact = "e" * (64 * 1024)
    failed = driver.status(worker, job["id"], "FAILED", error_message=exact)["job"]
    assert failed["error_message"] == exact


def test_error_message_limit_counts_utf8_bytes(driver: Driver, client: FlaskClient) -> None:
    worker, job = held_job(driver)
    message = "é" * (32 * 1024 + 1)  # 32 Ki + 1 characters, 64 KiB + 2 bytes
    assert_error(put_status(client, worker, job["id"], {"status": "FAILED",
                                                        "error_message": message}), 413)


# -- not found / not held -------------------------------------------------------------------


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_job_is_404(driver: Driver, client: FlaskClient, job_id: str) -> None:
    worker = driver.worker()
    assert_error(put_status(client, worker, job_id, {"status": "PROCESSING"}), 404,
                 "Job not found")


def test_job_of_another_worker_is_409(driver: Driver, client: FlaskClient) -> None:
    holder, job = held_job(driver)
    intruder = driver.worker()
    for status in POSTABLE:
        assert_error(put_status(client, intruder, job["id"], {"status": status}), 409, NOT_HELD)
    assert driver.get_job(job["id"])["status"] == "CLAIMED"
    driver.status(holder, job["id"], "SUCCESS")
    # a finished job is still not the intruder's
    assert_error(put_status(client, intruder, job["id"], {"status": "SUCCESS"}), 409, NOT_HELD)


def test_queued_job_is_409(driver: Driver, client: FlaskClient) -> None:
    job = driver.enqueue("FETCH_RESOURCES")
    assert_error(put_status(client, driver.worker(), job["id"], {"status": "PROCESSING"}), 409,
                 NOT_HELD)


@pytest.mark.parametrize("job_type,processing,outcome", [
    ("FETCH_RESOURCES", False, "QUEUED"),
    ("PLAN", True, "QUEUED"),
    ("DEPLOY", True, "FAILED"),
])
def test_job_recovered_from_its_worker_is_409(app: Flask, driver: Driver, client: FlaskClient,
                                              job_type: str, processing: bool,
                                              outcome: str) -> None:
    enqueue: dict[str, Any] = {}
    if job_type in ("PLAN", "DEPLOY"):
        enqueue["vine_id"] = driver.vine()["id"]
    worker, job = driver.claimed(job_type, **enqueue)
    if processing:
        driver.status(worker, job["id"], "PROCESSING")
    now = datetime.now(UTC)
    set_last_heartbeat(app, worker.id, now - timedelta(minutes=10))
    recovery.sweep(repo(app), Timings(), now)
    assert driver.get_job(job["id"])["status"] == outcome
    for status in POSTABLE:
        assert_error(put_status(client, worker, job["id"], {"status": status}), 409, NOT_HELD)
    assert client.post(f"/api/jobs/{job['id']}/logs", json={"log_chunk": "late"},
                       headers=worker.headers).status_code == 409

"""domain.md "Vine side effects of job status": every row of the table, through the API."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.worker_helpers import OPERATOR, Driver, stored_job

VINE_JOBS = ["PLAN", "DEPLOY", "DESTROY"]


def outputs_for(vine: dict[str, Any]) -> dict[str, Any]:
    """Complete DEPLOY outputs for a vine with one database and one cache."""
    assert len(vine["databases"]) <= 1 and len(vine["caches"]) <= 1
    return {
        "cluster_name": "api-backend-production",
        "cluster_endpoint": "https://eks.example",
        "rds_cluster_endpoint": "db.example",
        "redis_primary_endpoint_address": "cache.example",
    }


def component_statuses(vine: dict[str, Any]) -> dict[str, str]:
    statuses = {"cluster": vine["cluster"]["status"]}
    statuses.update({f"db:{d['name']}": d["status"] for d in vine["databases"]})
    statuses.update({f"cache:{c['name']}": c["status"] for c in vine["caches"]})
    return statuses


def deploy_to_active(driver: Driver, vine: dict[str, Any]) -> dict[str, Any]:
    worker, job = driver.claimed("DEPLOY", vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    driver.status(worker, job["id"], "SUCCESS",
                  execution_metadata={"outputs": outputs_for(vine)})
    active = driver.get_vine(vine["id"])
    assert active["status"] == "ACTIVE", active["status_message"]
    return active


def fail_vine(driver: Driver, vine: dict[str, Any]) -> dict[str, Any]:
    worker, job = driver.claimed("PLAN", vine_id=vine["id"])
    driver.status(worker, job["id"], "FAILED", error_message="earlier failure")
    failed = driver.get_vine(vine["id"])
    assert failed["status"] == "FAILED"
    return failed


# -- enqueue --------------------------------------------------------------------------------


@pytest.mark.parametrize("job_type,expected", [("PLAN", "QUEUED"), ("DEPLOY", "QUEUED"),
                                               ("DESTROY", "DESTROYING")])
def test_enqueue_moves_the_vine(app: Flask, driver: Driver, job_type: str,
                                expected: str) -> None:
    vine = driver.vine()
    assert vine["status"] == "DRAFT"
    job = driver.enqueue(job_type, vine_id=vine["id"])
    assert driver.get_vine(vine["id"])["status"] == expected
    assert stored_job(app, job["id"]).vine_status_before.value == "DRAFT"


def test_enqueue_records_the_status_before(app: Flask, driver: Driver) -> None:
    vine = driver.vine()
    deploy_to_active(driver, vine)
    job = driver.enqueue("PLAN", vine_id=vine["id"])
    assert stored_job(app, job["id"]).vine_status_before.value == "ACTIVE"
    assert driver.get_vine(vine["id"])["status"] == "QUEUED"


def test_claim_leaves_the_vine_queued(driver: Driver) -> None:
    vine = driver.vine()
    driver.claimed("DEPLOY", vine_id=vine["id"])
    after = driver.get_vine(vine["id"])
    assert after["status"] == "QUEUED"
    assert set(component_statuses(after).values()) == {"PENDING"}


# -- DEPLOY PROCESSING ----------------------------------------------------------------------


def test_deploy_processing_provisions_and_creates(driver: Driver) -> None:
    vine = driver.vine(databases=2, caches=2)
    worker, job = driver.claimed("DEPLOY", vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    after = driver.get_vine(vine["id"])
    assert after["status"] == "PROVISIONING"
    statuses = component_statuses(after)
    assert len(statuses) == 5
    assert set(statuses.values()) == {"CREATING"}
    # further PROCESSING posts (metadata streaming) change nothing
    driver.status(worker, job["id"], "PROCESSING", execution_metadata={"phase": "apply"})
    assert driver.get_vine(vine["id"]) == after


def test_deploy_processing_updates_active_components(driver: Driver,
                                                     client: FlaskClient) -> None:
    vine = driver.vine()
    active = deploy_to_active(driver, vine)
    assert set(component_statuses(active).values()) == {"ACTIVE"}
    # add a database: the existing rows stay ACTIVE, the new one is PENDING
    databases = [{"name": d["name"], "engine": d["engine"]} for d in active["databases"]]
    response = client.patch(f"/api/vines/{vine['id']}", headers=OPERATOR,
                            json={"databases": [*databases, {"name": "extra",
                                                             "engine": "aurora-postgresql"}]})
    assert response.status_code == 200, response.get_json()
    worker, job = driver.claimed("DEPLOY", vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    after = driver.get_vine(vine["id"])
    assert after["status"] == "PROVISIONING"
    assert component_statuses(after) == {"cluster": "UPDATING", "db:db0": "UPDATING",
                                         "db:extra": "CREATING", "cache:cache0": "UPDATING"}


@pytest.mark.parametrize("job_type,expected", [("PLAN", "QUEUED"), ("DESTROY", "DESTROYING")])
def test_plan_and_destroy_processing_leave_components(driver: Driver, job_type: str,
                                                      expected: str) -> None:
    vine = driver.vine()
    worker, job = driver.claimed(job_type, vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    after = driver.get_vine(vine["id"])
    assert after["status"] == expected
    assert set(component_statuses(after).values()) == {"PENDING"}


# -- SUCCESS --------------------------------------------------------------------------------


def test_deploy_success_finalizes_and_activates(driver: Driver) -> None:
    vine = driver.vine()
    active = deploy_to_active(driver, vine)
    assert active["status_message"] is None
    assert active["cluster"]["cluster_name"] == "api-backend-production"
    assert active["databases"][0]["endpoint"] == "db.example"
    assert active["caches"][0]["endpoint"] == "cache.example"
    assert set(component_statuses(active).values()) == {"ACTIVE"}


@pytest.mark.parametrize("before", ["DRAFT", "ACTIVE", "FAILED"])
@pytest.mark.parametrize("processing", [False, True])
def test_plan_success_goes_back(driver: Driver, before: str, processing: bool) -> None:
    vine = driver.vine()
    if before == "ACTIVE":
        deploy_to_active(driver, vine)
    elif before == "FAILED":
        fail_vine(driver, vine)
    snapshot = driver.get_vine(vine["id"])
    worker, job = driver.claimed("PLAN", vine_id=vine["id"])
    if processing:
        driver.status(worker, job["id"], "PROCESSING")
    driver.status(worker, job["id"], "SUCCESS", execution_metadata={"plan_summary": {"add": 1}})
    after = driver.get_vine(vine["id"])
    assert after["status"] == before
    assert component_statuses(after) == component_statuses(snapshot)


def test_destroy_success(driver: Driver) -> None:
    vine = driver.vine(databases=2, caches=1,
                       network={"provision_network": True, "cidr_block": "10.0.0.0/16"})
    deploy_vine = driver.get_vine(vine["id"])
    assert deploy_vine["network"] is not None
    worker, job = driver.claimed("DESTROY", vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    driver.status(worker, job["id"], "SUCCESS")
    after = driver.get_vine(vine["id"])
    assert after["status"] == "DESTROYED"
    assert set(component_statuses(after).values()) == {"DESTROYED"}
    assert after["network"]["status"] == "DESTROYED"


def test_destroy_success_after_deploy(driver: Driver) -> None:
    vine = driver.vine()
    deploy_to_active(driver, vine)
    worker, job = driver.claimed("DESTROY", vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    driver.status(worker, job["id"], "SUCCESS")
    after = driver.get_vine(vine["id"])
    assert after["status"] == "DESTROYED"
    assert set(component_statuses(after).values()) == {"DESTROYED"}


# -- FAILED ---------------------------------------------------------------------------------


@pytest.mark.parametrize("job_type", VINE_JOBS)
@pytest.mark.parametrize("processing", [False, True])
def test_failed_fails_the_vine(driver: Driver, job_type: str, processing: bool) -> None:
    vine = driver.vine()
    worker, job = driver.claimed(job_type, vine_id=vine["id"])
    if processing:
        driver.status(worker, job["id"], "PROCESSING")
    message = f"{job_type}: Error: creating EKS Cluster: AccessDenied"
    driver.status(worker, job["id"], "FAILED", error_message=message)
    after = driver.get_vine(vine["id"])
    assert after["status"] == "FAILED"
    assert after["status_message"] == message


def test_failed_without_message_puts_the_stored_one_on_the_vine(driver: Driver) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("DEPLOY", vine_id=vine["id"])
    failed = driver.status(worker, job["id"], "FAILED")["job"]
    after = driver.get_vine(vine["id"])
    assert after["status"] == "FAILED"
    assert after["status_message"] == failed["error_message"]
    assert after["status_message"]


# -- CANCELLED ------------------------------------------------------------------------------


@pytest.mark.parametrize("job_type", VINE_JOBS)
@pytest.mark.parametrize("before", ["DRAFT", "ACTIVE"])
def test_cancelled_before_processing_goes_back(driver: Driver, job_type: str,
                                               before: str) -> None:
    vine = driver.vine()
    if before == "ACTIVE":
        deploy_to_active(driver, vine)
    worker, job = driver.claimed(job_type, vine_id=vine["id"])
    driver.status(worker, job["id"], "CANCELLED")
    after = driver.get_vine(vine["id"])
    assert after["status"] == before
    assert after["status_message"] is None


@pytest.mark.parametrize("job_type", VINE_JOBS)
def test_operator_cancel_of_queued_job_goes_back(driver: Driver, job_type: str) -> None:
    vine = driver.vine()
    job = driver.enqueue(job_type, vine_id=vine["id"])
    cancelled = driver.cancel(job["id"])["job"]
    assert cancelled["status"] == "CANCELLED"
    assert driver.get_vine(vine["id"])["status"] == "DRAFT"


def test_plan_cancelled_while_processing_goes_back(driver: Driver) -> None:
    vine = driver.vine()
    deploy_to_active(driver, vine)
    worker, job = driver.claimed("PLAN", vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    driver.status(worker, job["id"], "CANCELLED")
    after = driver.get_vine(vine["id"])
    assert after["status"] == "ACTIVE"
    assert after["status_message"] is None


@pytest.mark.parametrize("job_type", ["DEPLOY", "DESTROY"])
def test_apply_cancelled_while_processing_fails_the_vine(driver: Driver, job_type: str) -> None:
    vine = driver.vine()
    worker, job = driver.claimed(job_type, vine_id=vine["id"])
    driver.status(worker, job["id"], "PROCESSING")
    driver.status(worker, job["id"], "CANCELLED")
    after = driver.get_vine(vine["id"])
    assert after["status"] == "FAILED"
    message = after["status_message"].lower()
    assert "cancel" in message
    assert "partly" in message or "partially" in message


def test_jobs_without_a_vine_touch_no_vine(driver: Driver) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("FETCH_RESOURCES")
    driver.status(worker, job["id"], "FAILED", error_message="boom")
    assert driver.get_vine(vine["id"])["status"] == "DRAFT"


def test_next_job_after_failure_starts_from_failed(app: Flask, driver: Driver) -> None:
    vine = driver.vine()
    fail_vine(driver, vine)
    worker, job = driver.claimed("DEPLOY", vine_id=vine["id"])
    assert stored_job(app, job["id"]).vine_status_before.value == "FAILED"
    driver.status(worker, job["id"], "CANCELLED")
    assert driver.get_vine(vine["id"])["status"] == "FAILED"

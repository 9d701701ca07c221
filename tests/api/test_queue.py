"""The job queue through the operator API: enqueue rules (domain.md "Enqueueing"), listing,
cancel."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
from flask import Flask

from tests.api.conftest import Api, RegisteredWorker
from vintner.domain.model import VineStatus

PLAN_STALE = "configuration changed since the plan was generated; plan again"


def _stored_job(app: Flask, job_id: str) -> Any:
    repo = app.extensions["vintner"].repository
    with repo.transaction(readonly=True) as tx:
        return tx.get_job(uuid.UUID(job_id))


def _canonical_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _run_to(api: Api, worker: RegisteredWorker, job_id: str, status: str) -> None:
    claimed = api.claim(worker)
    assert claimed is not None and claimed["job"]["id"] == job_id
    api.post_status(worker, job_id, "PROCESSING")
    api.post_status(worker, job_id, status)


# -- enqueue ------------------------------------------------------------------------------------


def test_plan_snapshot_and_hash(api: Api, app: Flask) -> None:
    vine = api.create_vine()
    job = api.enqueue("PLAN", vine["id"])
    assert job["status"] == "QUEUED" and job["job_type"] == "PLAN"
    assert job["vine_id"] == vine["id"] and job["vineyard_id"] == vine["vineyard_id"]
    assert job["cloud_identity_id"] == vine["cloud_identity_id"]
    assert job["attempts"] == 0 and job["worker_id"] is None and job["cancel_requested"] is False
    snap = job["config_snapshot"]
    assert snap["provider"] == "aws"
    assert snap["vine_id"] == vine["id"] and snap["project_name"] == "shop"
    assert snap["region"] == "eu-central-1" and snap["environment_stage"] == "staging"
    assert snap["terraform"] == {"module": "example", "variables": {"replicas": 2}}
    assert snap["cluster"] == {"cluster_version": "1.30", "instance_types": ["t3.large"],
                               "node_min_size": 1, "node_max_size": 3, "node_desired_size": 2}
    assert snap["databases"] == [{"name": "main", "engine": "aurora-postgresql",
                                  "engine_version": "16.1", "min_capacity": 0.5,
                                  "max_capacity": 4}]
    assert snap["caches"][0]["name"] == "sessions"
    assert snap["network"] == {"provision_network": True, "network_id": None,
                               "cidr_block": "10.0.0.0/16"}
    # no status, timestamps, component ids or finalize columns in the snapshot
    assert "status" not in snap and "created_at" not in snap
    assert "id" not in snap["cluster"] and "cluster_name" not in snap["cluster"]
    assert "endpoint" not in snap["databases"][0]
    assert job["configuration_hash"] == _canonical_hash(snap)
    # the vine is QUEUED, and the job remembers what it was
    assert api.get(f"/api/vines/{vine['id']}")["status"] == "QUEUED"
    assert _stored_job(app, job["id"]).vine_status_before == VineStatus.DRAFT


def test_hash_changes_only_with_configuration(api: Api) -> None:
    vine = api.create_vine()
    first = api.enqueue("PLAN", vine["id"])
    api.post(f"/api/jobs/{first['id']}/cancel", expect=200)
    second = api.enqueue("PLAN", vine["id"])
    assert second["configuration_hash"] == first["configuration_hash"]
    api.post(f"/api/jobs/{second['id']}/cancel", expect=200)
    api.patch(f"/api/vines/{vine['id']}", {"terraform": {"module": "example",
                                                         "variables": {"replicas": 3}}})
    third = api.enqueue("PLAN", vine["id"])
    assert third["configuration_hash"] != first["configuration_hash"]
    # the first job's snapshot never changed
    assert api.get(f"/api/jobs/{first['id']}")["config_snapshot"]["terraform"]["variables"] == {
        "replicas": 2}


def test_second_unfinished_vine_job_is_409(api: Api) -> None:
    vine = api.create_vine()
    api.enqueue("PLAN", vine["id"])
    for job_type in ("PLAN", "DEPLOY", "DESTROY"):
        body = api.enqueue(job_type, vine["id"], expect=409)
        assert body["code"] == 409 and "unfinished" in body["error"]
    # another vine is not affected
    api.enqueue("PLAN", api.create_vine()["id"])


def test_held_job_still_blocks_and_terminal_job_does_not(api: Api) -> None:
    vine = api.create_vine()
    job = api.enqueue("PLAN", vine["id"])
    worker = api.register_worker()
    assert api.claim(worker)["job"]["id"] == job["id"]
    api.enqueue("DEPLOY", vine["id"], expect=409)
    api.post_status(worker, job["id"], "SUCCESS")
    assert api.get(f"/api/vines/{vine['id']}")["status"] == "DRAFT"  # back to before
    api.enqueue("DEPLOY", vine["id"])


def test_destroy_sets_vine_destroying(api: Api, app: Flask) -> None:
    vine = api.create_vine()
    job = api.enqueue("DESTROY", vine["id"])
    assert api.get(f"/api/vines/{vine['id']}")["status"] == "DESTROYING"
    assert _stored_job(app, job["id"]).vine_status_before == VineStatus.DRAFT
    api.post(f"/api/jobs/{job['id']}/cancel", expect=200)
    assert api.get(f"/api/vines/{vine['id']}")["status"] == "DRAFT"


def test_deploy_with_plan(api: Api) -> None:
    vine = api.create_vine()
    worker = api.register_worker()
    plan = api.enqueue("PLAN", vine["id"])
    _run_to(api, worker, plan["id"], "SUCCESS")
    deploy = api.enqueue("DEPLOY", vine["id"], plan_job_id=plan["id"])
    assert deploy["plan_job_id"] == plan["id"]
    assert deploy["configuration_hash"] == plan["configuration_hash"]
    assert api.get(f"/api/vines/{vine['id']}")["status"] == "QUEUED"


def test_deploy_with_stale_plan_is_409(api: Api) -> None:
    vine = api.create_vine()
    worker = api.register_worker()
    plan = api.enqueue("PLAN", vine["id"])
    _run_to(api, worker, plan["id"], "SUCCESS")
    api.patch(f"/api/vines/{vine['id']}", {"cluster": {"node_desired_size": 3}})
    body = api.enqueue("DEPLOY", vine["id"], plan_job_id=plan["id"], expect=409)
    assert body == {"error": PLAN_STALE, "code": 409}
    # nothing was enqueued and the vine did not change status
    assert api.get(f"/api/jobs?vine_id={vine['id']}&job_type=DEPLOY")["total"] == 0
    assert api.get(f"/api/vines/{vine['id']}")["status"] == "DRAFT"


def test_deploy_plan_job_rules(api: Api) -> None:
    vine = api.create_vine()
    other = api.create_vine()
    worker = api.register_worker()
    failed_plan = api.enqueue("PLAN", vine["id"])
    _run_to(api, worker, failed_plan["id"], "FAILED")
    body = api.enqueue("DEPLOY", vine["id"], plan_job_id=failed_plan["id"], expect=409)
    assert "FAILED" in body["error"]
    other_plan = api.enqueue("PLAN", other["id"])
    body = api.enqueue("DEPLOY", vine["id"], plan_job_id=other_plan["id"], expect=400)
    assert "plan_job_id" in body["errors"]
    body = api.enqueue("DEPLOY", vine["id"], plan_job_id=str(uuid.uuid4()), expect=400)
    assert "plan_job_id" in body["errors"]
    body = api.enqueue("PLAN", vine["id"], plan_job_id=other_plan["id"], expect=400)
    assert "plan_job_id" in body["errors"]


def test_vine_jobs_need_a_vine(api: Api) -> None:
    for job_type in ("PLAN", "DEPLOY", "DESTROY"):
        body = api.enqueue(job_type, expect=400)
        assert "vine_id" in body["errors"]
    assert api.enqueue("PLAN", str(uuid.uuid4()), expect=404)["error"] == "Vine not found"


def test_vine_jobs_refuse_snapshot_and_foreign_identity(api: Api) -> None:
    vine = api.create_vine()
    body = api.enqueue("PLAN", vine["id"], config_snapshot={"x": 1}, expect=400)
    assert "config_snapshot" in body["errors"]
    other = api.create_identity(name="other")
    body = api.enqueue("PLAN", vine["id"], cloud_identity_id=other["id"], expect=400)
    assert "cloud_identity_id" in body["errors"]
    same = api.enqueue("PLAN", vine["id"], cloud_identity_id=vine["cloud_identity_id"])
    assert same["cloud_identity_id"] == vine["cloud_identity_id"]


def test_connection_test_and_other_jobs(api: Api) -> None:
    identity = api.create_identity()
    job = api.enqueue("CONNECTION_TEST", cloud_identity_id=identity["id"],
                      config_snapshot={"reason": "onboarding"})
    assert job["vine_id"] is None and job["cloud_identity_id"] == identity["id"]
    assert job["config_snapshot"] == {"reason": "onboarding"}
    assert job["configuration_hash"] == _canonical_hash({"reason": "onboarding"})
    assert "cloud_identity_id" in api.enqueue("CONNECTION_TEST", expect=400)["errors"]
    assert api.enqueue("CONNECTION_TEST", cloud_identity_id=str(uuid.uuid4()),
                       expect=404)["error"] == "Cloud identity not found"
    fetch = api.enqueue("FETCH_RESOURCES")
    assert fetch["config_snapshot"] == {}
    body = api.enqueue("DEPLOY_WORKER", api.create_vine()["id"], expect=400)
    assert "vine_id" in body["errors"]


def test_assigned_worker(api: Api) -> None:
    worker = api.register_worker()
    job = api.enqueue("FETCH_RESOURCES", assigned_worker_id=worker.id)
    assert job["assigned_worker_id"] == worker.id
    body = api.enqueue("FETCH_RESOURCES", assigned_worker_id=str(uuid.uuid4()), expect=404)
    assert body["error"] == "Assigned worker not found"


@pytest.mark.parametrize(("payload", "field"), [
    ({}, "job_type"),
    ({"job_type": "REBOOT"}, "job_type"),
    ({"job_type": "plan"}, "job_type"),
    ({"job_type": 1}, "job_type"),
    ({"job_type": "PLAN", "vine_id": "abc"}, "vine_id"),
    ({"job_type": "FETCH_RESOURCES", "config_snapshot": [1]}, "config_snapshot"),
    ({"job_type": "FETCH_RESOURCES", "config_snapshot": {"a": "\x00"}}, "config_snapshot"),
    ({"job_type": "FETCH_RESOURCES", "assigned_worker_id": 5}, "assigned_worker_id"),
])
def test_enqueue_bad_input(api: Api, payload: dict, field: str) -> None:
    body = api.post("/api/jobs", payload, expect=400)
    assert field in body["errors"]


def test_invalid_job_type_names_allowed_values(api: Api) -> None:
    body = api.post("/api/jobs", {"job_type": "REBOOT"}, expect=400)
    message = body["errors"]["job_type"][0]
    for name in ("PLAN", "DEPLOY", "DESTROY", "CONNECTION_TEST", "FETCH_RESOURCES"):
        assert name in message


# -- listing ------------------------------------------------------------------------------------


def test_list_filters_and_pagination(api: Api) -> None:
    vineyard = api.create_vineyard()
    identity = api.create_identity()
    vines = [api.create_vine(vineyard["id"], identity["id"]) for _ in range(3)]
    other_vine = api.create_vine()
    plans = [api.enqueue("PLAN", v["id"]) for v in vines]
    other = api.enqueue("DESTROY", other_vine["id"])
    fetch = api.enqueue("FETCH_RESOURCES")
    api.post(f"/api/jobs/{plans[0]['id']}/cancel", expect=200)

    everything = api.get("/api/jobs")
    assert everything["total"] == 5 and everything["limit"] == 20 and everything["offset"] == 0
    ids = [j["id"] for j in everything["jobs"]]
    assert ids == [fetch["id"], other["id"], *[p["id"] for p in reversed(plans)]]  # newest first

    def ids_of(query: str) -> set[str]:
        body = api.get(f"/api/jobs?{query}")
        assert body["total"] == len(body["jobs"])
        return {j["id"] for j in body["jobs"]}

    assert ids_of(f"vineyard_id={vineyard['id']}") == {p["id"] for p in plans}
    assert ids_of(f"vine_id={vines[1]['id']}") == {plans[1]["id"]}
    assert ids_of("job_type=DESTROY") == {other["id"]}
    assert ids_of("status=CANCELLED") == {plans[0]["id"]}
    assert ids_of(f"status=QUEUED&vineyard_id={vineyard['id']}") == {p["id"] for p in plans[1:]}
    assert ids_of(f"vine_id={uuid.uuid4()}") == set()

    page = api.get("/api/jobs?limit=2&offset=3")
    assert page["total"] == 5 and [j["id"] for j in page["jobs"]] == ids[3:5]
    assert api.get("/api/jobs?limit=2&offset=10")["jobs"] == []


def test_list_by_worker(api: Api) -> None:
    vine = api.create_vine()
    job = api.enqueue("PLAN", vine["id"])
    api.enqueue("FETCH_RESOURCES")
    worker = api.register_worker()
    assert api.claim(worker)["job"]["id"] == job["id"]
    body = api.get(f"/api/jobs?worker_id={worker.id}")
    assert [j["id"] for j in body["jobs"]] == [job["id"]]


@pytest.mark.parametrize(("query", "field"), [
    ("status=DONE", "status"), ("job_type=BUILD", "job_type"), ("vine_id=1", "vine_id"),
    ("vineyard_id=x", "vineyard_id"), ("limit=101", "limit"), ("limit=0", "limit"),
    ("offset=-5", "offset"), ("limit=ten", "limit"),
])
def test_list_bad_query(api: Api, query: str, field: str) -> None:
    body = api.get(f"/api/jobs?{query}", expect=400)
    assert field in body["errors"]


def test_list_status_error_names_allowed_values(api: Api) -> None:
    body = api.get("/api/jobs?status=DONE", expect=400)
    assert body["errors"]["status"] == [
        "Must be one of: QUEUED, CLAIMED, PROCESSING, SUCCESS, FAILED, CANCELLED."]


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_queued_job(api: Api) -> None:
    vine = api.create_vine()
    job = api.enqueue("PLAN", vine["id"])
    body = api.post(f"/api/jobs/{job['id']}/cancel", expect=200)
    assert body["success"] is True
    assert body["job"]["status"] == "CANCELLED" and body["job"]["completed_at"]
    assert body["job"]["cancel_requested"] is True
    assert api.get(f"/api/vines/{vine['id']}")["status"] == "DRAFT"
    # nothing to claim, and a new job may be enqueued
    assert api.claim(api.register_worker()) is None
    api.enqueue("PLAN", vine["id"])


def test_cancel_held_job_requests_cancel(api: Api) -> None:
    vine = api.create_vine()
    job = api.enqueue("DEPLOY", vine["id"])
    worker = api.register_worker()
    api.claim(worker)
    api.post_status(worker, job["id"], "PROCESSING")
    body = api.post(f"/api/jobs/{job['id']}/cancel", expect=200)
    assert body["job"]["status"] == "PROCESSING" and body["job"]["cancel_requested"] is True
    assert api.get(f"/api/vines/{vine['id']}")["status"] == "PROVISIONING"
    # a repeated request is fine
    assert api.post(f"/api/jobs/{job['id']}/cancel", expect=200)["job"]["cancel_requested"]
    beat = api.client.post("/api/workers/heartbeat", json={}, headers=worker.headers)
    assert beat.get_json()["cancel_requested"] == [job["id"]]
    api.post_status(worker, job["id"], "CANCELLED")
    vine_now = api.get(f"/api/vines/{vine['id']}")
    assert vine_now["status"] == "FAILED" and "cancel" in vine_now["status_message"]


def test_cancel_claimed_job(api: Api) -> None:
    vine = api.create_vine()
    job = api.enqueue("PLAN", vine["id"])
    worker = api.register_worker()
    api.claim(worker)
    body = api.post(f"/api/jobs/{job['id']}/cancel", expect=200)
    assert body["job"]["status"] == "CLAIMED" and body["job"]["cancel_requested"] is True
    api.post_status(worker, job["id"], "CANCELLED")
    assert api.get(f"/api/vines/{vine['id']}")["status"] == "DRAFT"


@pytest.mark.parametrize("final", ["SUCCESS", "FAILED", "CANCELLED"])
def test_cancel_terminal_job_is_409(api: Api, final: str) -> None:
    vine = api.create_vine()
    job = api.enqueue("PLAN", vine["id"])
    if final == "CANCELLED":
        api.post(f"/api/jobs/{job['id']}/cancel", expect=200)
    else:
        _run_to(api, api.register_worker(), job["id"], final)
    body = api.post(f"/api/jobs/{job['id']}/cancel", expect=409)
    assert body["code"] == 409 and final in body["error"]


def test_cancel_unknown_job(api: Api) -> None:
    for ident in (str(uuid.uuid4()), "not-a-uuid"):
        assert api.post(f"/api/jobs/{ident}/cancel", expect=404) == {"error": "Job not found",
                                                                    "code": 404}

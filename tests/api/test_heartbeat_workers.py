"""worker-api.md "Worker registration", "Heartbeat", "Worker metadata" and liveness
(operations.md "Liveness and recovery"): register, heartbeat, worker object, metadata merge,
delete and token rotation, OFFLINE computed from the server's clock."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from tests.api.worker_helpers import (
    OPERATOR,
    Driver,
    WorkerCreds,
    assert_error,
    contains_key,
    repo,
    set_last_heartbeat,
    stored_worker,
)

WORKER_KEYS = {"id", "name", "mode", "status", "version", "last_heartbeat", "cloud_identity_id",
               "metadata", "created_at"}
INVALID = "Invalid worker ID or token"


def parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, f"timestamp without a UTC offset: {value}"
    return parsed


def register(client: FlaskClient, **fields: Any) -> Any:
    body = {"name": "eu-west-1-tendril", "mode": "self-hosted", **fields}
    return client.post("/api/workers/register", json=body, headers=OPERATOR)


# -- registration ---------------------------------------------------------------------------


def test_register_response_and_token(app: Flask, client: FlaskClient) -> None:
    response = register(client, metadata={"region": "eu-west-1"})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"worker_id", "worker_token", "worker"}
    worker = body["worker"]
    assert set(worker) == WORKER_KEYS
    assert worker["id"] == body["worker_id"] == str(uuid.UUID(body["worker_id"]))
    assert worker["name"] == "eu-west-1-tendril"
    assert worker["mode"] == "self-hosted"
    assert worker["status"] == "OFFLINE"  # until the first heartbeat
    assert worker["version"] is None and worker["last_heartbeat"] is None
    assert worker["cloud_identity_id"] is None
    assert worker["metadata"] == {"region": "eu-west-1"}
    parse_ts(worker["created_at"])

    token = body["worker_token"]
    assert token.startswith("vtw_")
    secret = token[len("vtw_"):]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", secret), "URL-safe characters only"
    # at least 32 random bytes: 43 URL-safe base64 characters (6 bits each) or more
    assert len(secret) * 6 >= 256

    # only the lowercase hex SHA-256 is stored
    stored = stored_worker(app, body["worker_id"])
    assert stored is not None
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", stored.token_hash)
    engine = getattr(repo(app), "engine", None)
    if engine is not None:  # the SQL backend: the plaintext is in no column of the row
        with engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM workers WHERE token_hash = :h"),
                               {"h": stored.token_hash}).mappings().one()
        assert all(secret not in str(value) for value in row.values())


def test_register_ignores_unknown_fields(client: FlaskClient) -> None:
    response = register(client, labels={"team": "a"}, capabilities=["PLAN"])
    assert response.status_code == 201
    assert "labels" not in response.get_json()["worker"]


def test_tokens_differ_between_workers(client: FlaskClient) -> None:
    tokens = {register(client).get_json()["worker_token"] for _ in range(5)}
    assert len(tokens) == 5


def test_register_cloud_hosted_bound_to_identity(driver: Driver, client: FlaskClient) -> None:
    identity = driver.identity()
    response = register(client, mode="cloud-hosted", cloud_identity_id=identity["id"])
    assert response.status_code == 201
    worker = response.get_json()["worker"]
    assert worker["mode"] == "cloud-hosted"
    assert worker["cloud_identity_id"] == identity["id"]


def test_register_unknown_identity_is_404(client: FlaskClient) -> None:
    assert_error(register(client, cloud_identity_id=str(uuid.uuid4())), 404)


@pytest.mark.parametrize("fields", [
    {"name": ""},
    {"name": "x" * 101},
    {"mode": "serverless"},
    {"mode": None},
    {"metadata": []},
    {"cloud_identity_id": "nope"},
])
def test_register_validation(client: FlaskClient, fields: dict[str, Any]) -> None:
    body = assert_error(register(client, **fields), 400)
    assert set(body["errors"]) == set(fields)


def test_register_requires_name_and_mode(client: FlaskClient) -> None:
    body = assert_error(client.post("/api/workers/register", json={}, headers=OPERATOR), 400)
    assert set(body["errors"]) == {"name", "mode"}


def test_register_name_of_100_chars_ok(client: FlaskClient) -> None:
    assert register(client, name="x" * 100).status_code == 201


def test_register_metadata_over_64_kib_is_413(client: FlaskClient) -> None:
    assert_error(register(client, metadata={"blob": "x" * (64 * 1024)}), 413)


def test_token_hash_is_never_returned(driver: Driver, client: FlaskClient, app: Flask) -> None:
    response = register(client)
    reg = response.get_json()
    worker = WorkerCreds(reg["worker_id"], reg["worker_token"])
    token_hash = hashlib.sha256(worker.token.encode()).hexdigest()
    rotated = client.post(f"/api/workers/{worker.id}/rotate-token", headers=OPERATOR)
    worker = WorkerCreds(worker.id, rotated.get_json()["worker_token"])
    new_hash = hashlib.sha256(worker.token.encode()).hexdigest()
    responses = [
        response,
        rotated,
        client.post("/api/workers/heartbeat", json={}, headers=worker.headers),
        client.get(f"/api/workers/{worker.id}", headers=worker.headers),
        client.get(f"/api/workers/{worker.id}", headers=OPERATOR),
        client.get("/api/workers", headers=OPERATOR),
        client.patch(f"/api/workers/{worker.id}/metadata", json={"a": 1},
                     headers=worker.headers),
    ]
    for r in responses:
        assert r.status_code in (200, 201), r.get_json()
        assert not contains_key(r.get_json(), "token_hash")
        assert token_hash.encode() not in r.data and new_hash.encode() not in r.data


# -- heartbeat ------------------------------------------------------------------------------


def test_heartbeat_empty_body(app: Flask, client: FlaskClient, driver: Driver) -> None:
    worker = driver.worker()
    before = datetime.now(UTC)
    for kwargs in ({}, {"data": b"", "content_type": "application/json"}, {"json": {}}):
        response = client.post("/api/workers/heartbeat", headers=worker.headers, **kwargs)
        assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["success"] is True
    assert body["status"] == "ONLINE"
    server_time = parse_ts(body["server_time"])
    assert abs(server_time - before) < timedelta(seconds=30)
    assert body["heartbeat_interval_s"] == 30
    assert body["offline_after_s"] == 60
    assert body["cancel_requested"] == []
    stored = stored_worker(app, worker.id)
    assert stored is not None and stored.last_heartbeat is not None
    assert abs(stored.last_heartbeat - server_time) < timedelta(seconds=5)
    me = client.get(f"/api/workers/{worker.id}", headers=worker.headers).get_json()
    assert me["status"] == "ONLINE"
    assert parse_ts(me["last_heartbeat"]) == stored.last_heartbeat


def test_heartbeat_stores_version_and_ignores_unknown_fields(driver: Driver,
                                                             client: FlaskClient) -> None:
    worker = driver.worker()
    driver.heartbeat(worker, version="0.1.0", current_job_id=None, future_field={"x": 1})
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["version"] \
        == "0.1.0"
    driver.heartbeat(worker)  # no version: the stored one stays
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["version"] \
        == "0.1.0"
    driver.heartbeat(worker, version="v" * 64)
    assert_error(client.post("/api/workers/heartbeat", json={"version": "v" * 65},
                             headers=worker.headers), 400)


def test_heartbeat_draining_and_back(driver: Driver, client: FlaskClient) -> None:
    worker = driver.worker()
    assert driver.heartbeat(worker, status="DRAINING")["status"] == "DRAINING"
    me = client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()
    assert me["status"] == "DRAINING"
    # every heartbeat states the status: ONLINE ends draining, and so does one without status
    assert driver.heartbeat(worker, status="ONLINE")["status"] == "ONLINE"
    assert driver.heartbeat(worker, status="DRAINING")["status"] == "DRAINING"
    assert driver.heartbeat(worker)["status"] == "ONLINE"
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["status"] \
        == "ONLINE"


@pytest.mark.parametrize("body", [{"status": "OFFLINE"}, {"status": "online"},
                                  {"version": 1}, {"current_job_id": "x"}, [1]])
def test_heartbeat_bad_input(driver: Driver, client: FlaskClient, body: Any) -> None:
    worker = driver.worker()
    assert_error(client.post("/api/workers/heartbeat", json=body, headers=worker.headers), 400)


@pytest.mark.parametrize("app_overrides", [{"heartbeat_interval_s": 10,
                                            "worker_offline_after_s": 25}])
def test_heartbeat_reports_configured_intervals(driver: Driver) -> None:
    body = driver.heartbeat(driver.worker())
    assert body["heartbeat_interval_s"] == 10 and body["offline_after_s"] == 25


def test_heartbeat_lists_cancel_requested_jobs(driver: Driver) -> None:
    vine = driver.vine()
    worker, job = driver.claimed("PLAN", vine_id=vine["id"])
    other_worker, other_job = driver.claimed("FETCH_RESOURCES")
    assert driver.heartbeat(worker)["cancel_requested"] == []
    driver.cancel(job["id"])
    driver.cancel(other_job["id"])
    assert driver.heartbeat(worker)["cancel_requested"] == [job["id"]]
    assert driver.heartbeat(other_worker)["cancel_requested"] == [other_job["id"]]
    driver.status(worker, job["id"], "CANCELLED")
    assert driver.heartbeat(worker)["cancel_requested"] == []


# -- liveness -------------------------------------------------------------------------------


def test_offline_after_60s_without_heartbeat(app: Flask, driver: Driver,
                                             client: FlaskClient) -> None:
    worker = driver.worker()
    driver.heartbeat(worker)
    now = datetime.now(UTC)
    set_last_heartbeat(app, worker.id, now - timedelta(seconds=50))
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["status"] \
        == "ONLINE"
    set_last_heartbeat(app, worker.id, now - timedelta(seconds=61))
    # the stored status still says ONLINE (no sweep ran); every response says OFFLINE
    stored = stored_worker(app, worker.id)
    assert stored is not None and stored.status.value == "ONLINE"
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["status"] \
        == "OFFLINE"
    assert client.get(f"/api/workers/{worker.id}", headers=worker.headers).get_json()["status"] \
        == "OFFLINE"
    listing = client.get("/api/workers?limit=100", headers=OPERATOR).get_json()
    assert {w["id"]: w["status"] for w in listing["workers"]}[worker.id] == "OFFLINE"
    # a heartbeat brings it back
    assert driver.heartbeat(worker)["status"] == "ONLINE"
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["status"] \
        == "ONLINE"


def test_draining_worker_goes_offline_too(app: Flask, driver: Driver,
                                          client: FlaskClient) -> None:
    worker = driver.worker()
    driver.heartbeat(worker, status="DRAINING")
    set_last_heartbeat(app, worker.id, datetime.now(UTC) - timedelta(minutes=5))
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["status"] \
        == "OFFLINE"


@pytest.mark.parametrize("app_overrides", [{"worker_offline_after_s": 2}])
def test_offline_after_setting(app: Flask, driver: Driver, client: FlaskClient) -> None:
    worker = driver.worker()
    driver.heartbeat(worker)
    set_last_heartbeat(app, worker.id, datetime.now(UTC) - timedelta(seconds=3))
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["status"] \
        == "OFFLINE"


def test_liveness_uses_the_server_clock(app: Flask, driver: Driver,
                                        client: FlaskClient) -> None:
    """Nothing the client sends (a Date header, a timestamp in the body) moves its liveness."""
    worker = driver.worker()
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    response = client.post("/api/workers/heartbeat",
                           json={"server_time": "2001-01-01T00:00:00+00:00",
                                 "last_heartbeat": "2001-01-01T00:00:00+00:00"},
                           headers={**worker.headers, "Date": old})
    assert response.status_code == 200
    assert parse_ts(response.get_json()["server_time"]).year >= 2024
    stored = stored_worker(app, worker.id)
    assert stored is not None and stored.last_heartbeat is not None
    assert abs(stored.last_heartbeat - datetime.now(UTC)) < timedelta(seconds=30)
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["status"] \
        == "ONLINE"


def test_claim_counts_as_heartbeat(app: Flask, driver: Driver, client: FlaskClient) -> None:
    worker = driver.worker()
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()["status"] \
        == "OFFLINE"
    driver.claim(worker)  # nothing to claim: still a sign of life
    me = client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json()
    assert me["status"] == "ONLINE"
    assert me["last_heartbeat"] is not None


# -- worker object and metadata -------------------------------------------------------------


def test_get_worker_self_operator_and_other(driver: Driver, client: FlaskClient) -> None:
    worker = driver.worker(metadata={"deploy_config": {"replicas": 2}})
    other = driver.worker()
    mine = client.get(f"/api/workers/{worker.id}", headers=worker.headers)
    assert mine.status_code == 200
    assert set(mine.get_json()) == WORKER_KEYS
    assert mine.get_json()["metadata"] == {"deploy_config": {"replicas": 2}}
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).get_json() == \
        mine.get_json()
    assert_error(client.get(f"/api/workers/{other.id}", headers=worker.headers), 404)
    assert_error(client.get(f"/api/workers/{uuid.uuid4()}", headers=OPERATOR), 404)
    assert_error(client.get("/api/workers/nope", headers=OPERATOR), 404)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_metadata_merge(driver: Driver, client: FlaskClient, method: str) -> None:
    worker = driver.worker(metadata={"keep": 1, "drop": 2, "replace": {"a": 1}})
    url = f"/api/workers/{worker.id}/metadata"
    response = client.open(url, method=method, headers=worker.headers,
                           json={"drop": None, "replace": {"b": 2}, "new": [1, 2],
                                 "absent": None})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["success"] is True
    expected = {"keep": 1, "replace": {"b": 2}, "new": [1, 2]}
    assert body["worker"]["metadata"] == expected
    assert set(body["worker"]) == WORKER_KEYS
    # by an operator, too
    response = client.open(url, method=method, headers=OPERATOR, json={"op": True})
    assert response.status_code == 200
    assert client.get(f"/api/workers/{worker.id}", headers=worker.headers).get_json()[
        "metadata"] == {**expected, "op": True}


def test_metadata_limit_is_after_merging(driver: Driver, client: FlaskClient) -> None:
    worker = driver.worker()
    url = f"/api/workers/{worker.id}/metadata"
    half = "x" * (40 * 1024)
    assert client.post(url, json={"a": half}, headers=worker.headers).status_code == 200
    assert_error(client.post(url, json={"b": half}, headers=worker.headers), 413)
    # nothing of the refused patch was kept
    assert client.get(f"/api/workers/{worker.id}", headers=worker.headers).get_json()[
        "metadata"] == {"a": half}
    # removing a key makes room again
    assert client.patch(url, json={"a": None, "b": half}, headers=worker.headers) \
        .status_code == 200


def test_metadata_exactly_at_limit(driver: Driver, client: FlaskClient) -> None:
    worker = driver.worker()
    url = f"/api/workers/{worker.id}/metadata"
    overhead = len(json.dumps({"a": ""}, separators=(",", ":")))
    fits = "x" * (64 * 1024 - overhead)
    assert client.post(url, json={"a": fits}, headers=worker.headers).status_code == 200
    assert_error(client.post(url, json={"a": fits + "x"}, headers=worker.headers), 413)


def test_metadata_of_another_worker_is_404(driver: Driver, client: FlaskClient) -> None:
    worker, other = driver.worker(), driver.worker(metadata={"x": 1})
    for method in ("POST", "PATCH"):
        assert_error(client.open(f"/api/workers/{other.id}/metadata", method=method,
                                 json={"x": 2}, headers=worker.headers), 404)
    assert client.get(f"/api/workers/{other.id}", headers=OPERATOR).get_json()["metadata"] \
        == {"x": 1}


@pytest.mark.parametrize("data", [b"[1, 2]", b"{not json", b'"text"'])
def test_metadata_must_be_an_object(driver: Driver, client: FlaskClient, data: bytes) -> None:
    worker = driver.worker()
    assert_error(client.post(f"/api/workers/{worker.id}/metadata", data=data,
                             content_type="application/json", headers=worker.headers), 400)


# -- delete and rotate ----------------------------------------------------------------------


@pytest.mark.parametrize("by", ["self", "operator"])
def test_delete_worker_revokes_at_once(driver: Driver, client: FlaskClient, by: str) -> None:
    worker = driver.worker()
    driver.heartbeat(worker)
    headers = worker.headers if by == "self" else OPERATOR
    response = client.delete(f"/api/workers/{worker.id}", headers=headers)
    assert response.status_code == 204 and response.data == b""
    assert_error(client.post("/api/workers/heartbeat", json={}, headers=worker.headers), 401,
                 INVALID)
    assert_error(client.post("/api/jobs/claim", headers=worker.headers), 401, INVALID)
    assert_error(client.get(f"/api/workers/{worker.id}", headers=OPERATOR), 404)
    listing = client.get("/api/workers?limit=100", headers=OPERATOR).get_json()
    assert worker.id not in {w["id"] for w in listing["workers"]}


def test_delete_other_worker_is_404(driver: Driver, client: FlaskClient) -> None:
    worker, other = driver.worker(), driver.worker()
    assert_error(client.delete(f"/api/workers/{other.id}", headers=worker.headers), 404)
    driver.heartbeat(other)  # still works


def test_delete_recovers_held_jobs(driver: Driver, client: FlaskClient) -> None:
    claimed_vine = driver.vine()
    deploy_vine = driver.vine()
    worker = driver.worker()
    plan = driver.enqueue("PLAN", vine_id=claimed_vine["id"])
    deploy = driver.enqueue("DEPLOY", vine_id=deploy_vine["id"])
    assert driver.claim(worker)["job"]["id"] == plan["id"]
    assert driver.claim(worker)["job"]["id"] == deploy["id"]
    driver.status(worker, deploy["id"], "PROCESSING")

    assert client.delete(f"/api/workers/{worker.id}", headers=OPERATOR).status_code == 204

    requeued = driver.get_job(plan["id"])
    assert requeued["status"] == "QUEUED"
    assert requeued["worker_id"] is None
    assert driver.get_vine(claimed_vine["id"])["status"] == "QUEUED"

    failed = driver.get_job(deploy["id"])
    assert failed["status"] == "FAILED"
    assert failed["worker_id"] is None
    assert "infrastructure may be partly changed" in failed["error_message"]
    vine = driver.get_vine(deploy_vine["id"])
    assert vine["status"] == "FAILED"
    assert vine["status_message"] == failed["error_message"]

    # the requeued job is claimable by another worker
    again = driver.claim(driver.worker())
    assert again is not None and again["job"]["id"] == plan["id"]
    assert again["job"]["attempts"] == 2


def test_rotate_token(driver: Driver, client: FlaskClient, app: Flask) -> None:
    worker = driver.worker()
    response = client.post(f"/api/workers/{worker.id}/rotate-token", headers=OPERATOR)
    assert response.status_code == 200
    body = response.get_json()
    assert body["worker_id"] == worker.id
    new_token = body["worker_token"]
    assert new_token.startswith("vtw_") and new_token != worker.token
    assert not contains_key(body, "token_hash")
    assert_error(client.post("/api/workers/heartbeat", json={}, headers=worker.headers), 401,
                 INVALID)
    rotated = WorkerCreds(worker.id, new_token)
    assert driver.heartbeat(rotated)["success"] is True
    stored = stored_worker(app, worker.id)
    assert stored is not None
    assert stored.token_hash == hashlib.sha256(new_token.encode()).hexdigest()


def test_rotate_token_unknown_or_deleted_worker_is_404(driver: Driver,
                                                       client: FlaskClient) -> None:
    assert_error(client.post(f"/api/workers/{uuid.uuid4()}/rotate-token", headers=OPERATOR),
                 404)
    worker = driver.worker()
    client.delete(f"/api/workers/{worker.id}", headers=OPERATOR)
    assert_error(client.post(f"/api/workers/{worker.id}/rotate-token", headers=OPERATOR), 404)


def test_rotate_token_is_operator_only(driver: Driver, client: FlaskClient) -> None:
    worker = driver.worker()
    assert_error(client.post(f"/api/workers/{worker.id}/rotate-token", headers=worker.headers),
                 401, "Operator token required")

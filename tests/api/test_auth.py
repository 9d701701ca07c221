"""worker-api.md "Authentication": worker headers on every worker endpoint, operator bearer
tokens, and neither kind of token working as the other."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.worker_helpers import OPERATOR, Driver, WorkerCreds, assert_error
from tests.support.app import OPERATOR_TOKEN

MISSING = "Missing X-Worker-ID or X-Worker-Token"
INVALID = "Invalid worker ID or token"
OPERATOR_REQUIRED = "Operator token required"
INVALID_OPERATOR = "Invalid operator token"

JOB = "00000000-0000-4000-8000-000000000001"
WID = "00000000-0000-4000-8000-000000000002"

#: every endpoint a worker calls: (method, path, keyword arguments of the request)
WORKER_ENDPOINTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/workers/heartbeat", {"json": {}}),
    ("POST", "/api/jobs/claim", {}),
    ("PUT", f"/api/jobs/{JOB}/status", {"json": {"status": "PROCESSING"}}),
    ("GET", f"/api/jobs/{JOB}", {}),
    ("POST", f"/api/jobs/{JOB}/logs", {"json": {"log_chunk": "x"}}),
    ("GET", f"/api/jobs/{JOB}/logs", {}),
    ("POST", f"/api/jobs/{JOB}/plan-artifact", {"data": b"plan",
                                                "content_type": "application/octet-stream"}),
    ("GET", f"/api/jobs/{JOB}/plan-artifact", {}),
    ("GET", f"/api/workers/{WID}", {}),
    ("POST", f"/api/workers/{WID}/metadata", {"json": {"a": 1}}),
    ("PATCH", f"/api/workers/{WID}/metadata", {"json": {"a": 1}}),
    ("DELETE", f"/api/workers/{WID}", {}),
]
ENDPOINT_IDS = [f"{m} {p.replace(JOB, '{job}').replace(WID, '{worker}')}"
                for m, p, _ in WORKER_ENDPOINTS]

OPERATOR_ENDPOINTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/workers/register", {"json": {"name": "w", "mode": "self-hosted"}}),
    ("GET", "/api/workers", {}),
    ("POST", f"/api/workers/{WID}/rotate-token", {}),
    ("GET", "/api/jobs", {}),
    ("POST", "/api/jobs", {"json": {"job_type": "FETCH_RESOURCES"}}),
    ("POST", f"/api/jobs/{JOB}/cancel", {}),
]


def call(client: FlaskClient, endpoint: tuple[str, str, dict[str, Any]],
         headers: dict[str, str]) -> Any:
    method, path, kwargs = endpoint
    return client.open(path, method=method, headers=headers, **kwargs)


@pytest.fixture
def worker(driver: Driver) -> WorkerCreds:
    return driver.worker()


# -- missing credentials --------------------------------------------------------------------


def assert_every_endpoint(client: FlaskClient, headers: dict[str, str], message: str) -> None:
    """Every worker endpoint answers 401 ``message`` (all mismatches reported at once)."""
    wrong = []
    for endpoint, name in zip(WORKER_ENDPOINTS, ENDPOINT_IDS, strict=True):
        response = call(client, endpoint, headers)
        body = response.get_json(silent=True) or {}
        if (response.status_code, body.get("error"), body.get("code")) != (401, message, 401):
            wrong.append(f"{name}: {response.status_code} {response.data[:200]!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("case", ["none", "no-id", "no-token", "empty-id", "empty-token",
                                  "blank-both"])
def test_missing_worker_headers(client: FlaskClient, worker: WorkerCreds, case: str) -> None:
    headers = {
        "none": {},
        "no-id": {"X-Worker-Token": worker.token},
        "no-token": {"X-Worker-ID": worker.id},
        "empty-id": {"X-Worker-ID": "", "X-Worker-Token": worker.token},
        "empty-token": {"X-Worker-ID": worker.id, "X-Worker-Token": ""},
        "blank-both": {"X-Worker-ID": "", "X-Worker-Token": ""},
    }[case]
    assert_every_endpoint(client, headers, MISSING)


# -- invalid credentials --------------------------------------------------------------------


@pytest.mark.parametrize("case", ["not-a-uuid", "unknown-id", "wrong-token", "other-workers-token",
                                  "operator-token", "deleted-worker"])
def test_invalid_worker_credentials(client: FlaskClient, driver: Driver, worker: WorkerCreds,
                                    case: str) -> None:
    if case == "deleted-worker":
        assert client.delete(f"/api/workers/{worker.id}", headers=OPERATOR).status_code == 204
    headers = {
        "not-a-uuid": {"X-Worker-ID": "worker-1", "X-Worker-Token": worker.token},
        "unknown-id": {"X-Worker-ID": str(uuid.uuid4()), "X-Worker-Token": worker.token},
        "wrong-token": {"X-Worker-ID": worker.id, "X-Worker-Token": worker.token + "x"},
        "other-workers-token": {"X-Worker-ID": worker.id,
                                "X-Worker-Token": driver.worker().token},
        "operator-token": {"X-Worker-ID": worker.id, "X-Worker-Token": OPERATOR_TOKEN},
        "deleted-worker": worker.headers,
    }[case]
    assert_every_endpoint(client, headers, INVALID)


def test_valid_credentials_pass(client: FlaskClient, worker: WorkerCreds) -> None:
    """The control for the cases above: the same worker's real headers are accepted."""
    assert client.post("/api/workers/heartbeat", json={}, headers=worker.headers).status_code == 200
    assert client.get(f"/api/workers/{worker.id}", headers=worker.headers).status_code == 200


def test_authentication_comes_before_validation(client: FlaskClient) -> None:
    """An unauthenticated caller learns nothing from its body or path: always 401 first."""
    assert_error(client.put("/api/jobs/not-a-uuid/status", data="{not json",
                            content_type="application/json"), 401, MISSING)
    assert_error(client.post("/api/jobs/not-a-uuid/logs", json={"log_chunk": ""}), 401, MISSING)
    assert_error(client.post("/api/workers/register", json={"name": ""}), 401,
                 OPERATOR_REQUIRED)


# -- operator tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", OPERATOR_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in
                                                              OPERATOR_ENDPOINTS])
def test_operator_token_required(client: FlaskClient, worker: WorkerCreds,
                                 endpoint: tuple[str, str, dict[str, Any]]) -> None:
    assert_error(call(client, endpoint, {}), 401, OPERATOR_REQUIRED)
    # worker headers are not an operator's
    assert_error(call(client, endpoint, worker.headers), 401, OPERATOR_REQUIRED)


@pytest.mark.parametrize("endpoint", OPERATOR_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in
                                                              OPERATOR_ENDPOINTS])
@pytest.mark.parametrize("authorization", [
    "Bearer wrong-token",
    f"Bearer {OPERATOR_TOKEN}x",
    f"Basic {OPERATOR_TOKEN}",
    f"Token {OPERATOR_TOKEN}",
    "Bearer",
])
def test_invalid_operator_token(client: FlaskClient, endpoint: tuple[str, str, dict[str, Any]],
                                authorization: str) -> None:
    assert_error(call(client, endpoint, {"Authorization": authorization}), 401, INVALID_OPERATOR)


@pytest.mark.parametrize("endpoint", OPERATOR_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in
                                                              OPERATOR_ENDPOINTS])
def test_worker_token_is_not_an_operator_token(client: FlaskClient, worker: WorkerCreds,
                                               endpoint: tuple[str, str, dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {worker.token}", **worker.headers}
    assert_error(call(client, endpoint, headers), 401, INVALID_OPERATOR)


@pytest.mark.parametrize("path", [f"/api/jobs/{JOB}", f"/api/jobs/{JOB}/logs",
                                  f"/api/jobs/{JOB}/plan-artifact"])
def test_worker_token_as_bearer_on_shared_endpoints(client: FlaskClient, worker: WorkerCreds,
                                                    path: str) -> None:
    """Endpoints open to workers and operators: a worker token as a Bearer token is refused."""
    assert_error(client.get(path, headers={"Authorization": f"Bearer {worker.token}"}), 401,
                 INVALID_OPERATOR)


def test_operator_token_works_on_shared_endpoints(client: FlaskClient,
                                                  worker: WorkerCreds) -> None:
    assert client.get(f"/api/workers/{worker.id}", headers=OPERATOR).status_code == 200
    assert_error(client.get(f"/api/jobs/{JOB}", headers=OPERATOR), 404, "Job not found")


def test_doubled_slashes_are_a_json_404_not_a_redirect(client: FlaskClient) -> None:
    response = client.get("//api//workers", headers=OPERATOR)
    assert response.status_code == 404
    assert response.get_json()["code"] == 404

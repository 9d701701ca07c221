"""Operator authentication on every operator endpoint of this module family."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import Api

SOME_ID = str(uuid.uuid4())
OPERATOR_ENDPOINTS = [
    ("POST", "/api/cloud-identities"),
    ("GET", "/api/cloud-identities"),
    ("GET", f"/api/cloud-identities/{SOME_ID}"),
    ("POST", "/api/vineyards"),
    ("GET", "/api/vineyards"),
    ("GET", f"/api/vineyards/{SOME_ID}"),
    ("POST", "/api/vines"),
    ("GET", "/api/vines"),
    ("GET", f"/api/vines/{SOME_ID}"),
    ("PATCH", f"/api/vines/{SOME_ID}"),
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs"),
    ("POST", f"/api/jobs/{SOME_ID}/cancel"),
    # a non-UUID id still gets 401 first: nothing is revealed before authentication
    ("GET", "/api/vines/not-a-uuid"),
]


@pytest.mark.parametrize(("method", "url"), OPERATOR_ENDPOINTS)
def test_missing_token(client: FlaskClient, method: str, url: str) -> None:
    response = client.open(url, method=method, json={"name": "x"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "Operator token required", "code": 401}


@pytest.mark.parametrize(("method", "url"), OPERATOR_ENDPOINTS)
@pytest.mark.parametrize("header", [
    "Bearer wrong-token-wrong-token", "Bearer ", "Basic dXNlcjpwYXNz", "test-operator-token",
])
def test_wrong_token(client: FlaskClient, method: str, url: str, header: str) -> None:
    response = client.open(url, method=method, json={}, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["error"] == "Invalid operator token"


@pytest.mark.parametrize(("method", "url"), OPERATOR_ENDPOINTS)
def test_worker_credentials_are_not_operator_credentials(
    client: FlaskClient, api: Api, method: str, url: str
) -> None:
    worker = api.register_worker()
    as_bearer = client.open(url, method=method, json={},
                            headers={"Authorization": f"Bearer {worker.token}"})
    assert as_bearer.status_code == 401
    assert as_bearer.get_json()["error"] == "Invalid operator token"
    as_worker = client.open(url, method=method, json={}, headers=worker.headers)
    assert as_worker.status_code == 401
    assert as_worker.get_json()["error"] == "Operator token required"


def test_operator_token_is_not_a_worker_token(client: FlaskClient, api: Api) -> None:
    worker = api.register_worker()
    from tests.support.app import OPERATOR_TOKEN

    response = client.post("/api/workers/heartbeat",
                           headers={"X-Worker-ID": worker.id, "X-Worker-Token": OPERATOR_TOKEN})
    assert response.status_code == 401
    assert response.get_json()["error"] == "Invalid worker ID or token"


def test_openapi_documents_operator_security(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    post_jobs = spec["paths"]["/api/jobs"]["post"]
    assert post_jobs["security"] == [{"operator": []}]
    assert "/api/vines/{vine_id}" in spec["paths"]

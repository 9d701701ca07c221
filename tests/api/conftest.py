"""Helpers for HTTP-level tests of the operator API.

``app`` and ``client`` (a real app on the selected, migrated database) come from
``tests/support/app.py``, loaded for every test by ``tests/conftest.py``. This module adds
``operator_headers`` and ``api``: operator-side helpers that create the things most tests need
(identity, vineyard, vine, job, worker) through the API and assert the expected status.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.app import OPERATOR_TOKEN, ROLE_ARN


@pytest.fixture
def operator_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@dataclass
class RegisteredWorker:
    id: str
    token: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Worker-ID": self.id, "X-Worker-Token": self.token}


def worker_headers(worker_id: str, token: str) -> dict[str, str]:
    return {"X-Worker-ID": worker_id, "X-Worker-Token": token}


class Api:
    """Operator-side helpers: each asserts the expected status and returns the JSON body."""

    def __init__(self, client: FlaskClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    # generic ----------------------------------------------------------------------------------
    def call(self, method: str, url: str, expect: int | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("headers", self.headers)
        response = self.client.open(url, method=method, **kwargs)
        if expect is not None:
            assert response.status_code == expect, (response.status_code, response.get_json())
        return response.get_json() if response.data else None

    def get(self, url: str, expect: int = 200, **kwargs: Any) -> Any:
        return self.call("GET", url, expect, **kwargs)

    def post(self, url: str, json: Any = None, expect: int = 201, **kwargs: Any) -> Any:
        return self.call("POST", url, expect, json=json, **kwargs)

    def patch(self, url: str, json: Any = None, expect: int = 200, **kwargs: Any) -> Any:
        return self.call("PATCH", url, expect, json=json, **kwargs)

    # things -----------------------------------------------------------------------------------
    def create_identity(self, name: str = "prod", role_arn: str = ROLE_ARN,
                        **credentials: Any) -> dict[str, Any]:
        return self.post("/api/cloud-identities", {
            "provider": "aws", "name": name, "credentials": {"role_arn": role_arn, **credentials},
        })

    def create_vineyard(self, name: str | None = None,
                        description: str | None = None) -> dict[str, Any]:
        name = name or f"vineyard-{uuid.uuid4().hex[:8]}"
        return self.post("/api/vineyards", {"name": name, "description": description})

    def vine_document(self, vineyard_id: str, cloud_identity_id: str | None = None,
                      **overrides: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "vineyard_id": vineyard_id,
            "cloud_identity_id": cloud_identity_id,
            "project_name": "shop",
            "environment_stage": "staging",
            "region": "eu-central-1",
            "terraform_version": "1.9.0",
            "terraform": {"module": "example", "variables": {"replicas": 2}},
            "cluster": {"cluster_version": "1.30", "instance_types": ["t3.large"],
                        "node_min_size": 1, "node_max_size": 3, "node_desired_size": 2},
            "databases": [{"name": "main", "engine": "aurora-postgresql",
                           "engine_version": "16.1", "min_capacity": 0.5, "max_capacity": 4}],
            "caches": [{"name": "sessions", "engine": "valkey", "node_type": "cache.t3.micro",
                        "num_cache_nodes": 1}],
            "network": {"provision_network": True, "cidr_block": "10.0.0.0/16"},
        }
        doc.update(overrides)
        return doc

    def create_vine(self, vineyard_id: str | None = None, cloud_identity_id: str | None = None,
                    **overrides: Any) -> dict[str, Any]:
        if vineyard_id is None:
            vineyard_id = self.create_vineyard()["id"]
        if cloud_identity_id is None:
            cloud_identity_id = self.create_identity()["id"]
        return self.post("/api/vines",
                         self.vine_document(vineyard_id, cloud_identity_id, **overrides))

    def enqueue(self, job_type: str, vine_id: str | None = None, expect: int = 201,
                **fields: Any) -> dict[str, Any]:
        body = {"job_type": job_type, **fields}
        if vine_id is not None:
            body["vine_id"] = vine_id
        return self.post("/api/jobs", body, expect=expect)

    def register_worker(self, name: str = "tendril-1", mode: str = "self-hosted",
                        **fields: Any) -> RegisteredWorker:
        body = self.post("/api/workers/register", {"name": name, "mode": mode, **fields})
        return RegisteredWorker(id=body["worker_id"], token=body["worker_token"], body=body)

    def claim(self, worker: RegisteredWorker) -> dict[str, Any] | None:
        response = self.client.post("/api/jobs/claim", headers=worker.headers)
        assert response.status_code in (200, 204), response.get_json()
        return response.get_json() if response.status_code == 200 else None

    def post_status(self, worker: RegisteredWorker, job_id: str, status: str,
                    expect: int = 200, **fields: Any) -> dict[str, Any]:
        return self.call("PUT", f"/api/jobs/{job_id}/status", expect,
                         json={"status": status, **fields}, headers=worker.headers)


@pytest.fixture
def api(client: FlaskClient, operator_headers: dict[str, str]) -> Api:
    return Api(client, operator_headers)

"""Fixtures for tests through the HTTP layer: a real app on the selected database, a test client,
and a small driver that sets up identities, vineyards, vines, workers and jobs the way an
operator and an agent would (through the HTTP API, so the tests exercise it).

Loaded for every test module by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from vintner import create_app

OPERATOR_TOKEN = "test-operator-token-0123456789"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
ROLE_ARN = "arn:aws:iam::123456789012:role/GrapeProvisionerRole"


def app_config(database_url: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "artifact_store": (tmp_path / "artifacts").as_uri(),
        "admin_token": OPERATOR_TOKEN,
        "instance_path": str(tmp_path / "instance"),
        "sweep_enabled": False,
        "log_level": "WARNING",
        **overrides,
    }


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    """Override in a module or test to change settings (e.g. short timings)."""
    return {}


@pytest.fixture
def app(database_url: str, tmp_path: Path, app_overrides: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(app_config(database_url, tmp_path, **app_overrides))
    yield application
    application.extensions["vintner"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class WorkerCreds:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Worker-ID": self.id, "X-Worker-Token": self.token}


class Driver:
    """Operator and agent actions over the HTTP API; every call asserts its expected status."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def _ok(self, response: Any, status: int) -> Any:
        assert response.status_code == status, (response.status_code, response.get_json())
        return response.get_json()

    # operator
    def identity(self, **credentials: Any) -> dict[str, Any]:
        creds = {"role_arn": ROLE_ARN, **credentials}
        body = {"provider": "aws", "name": f"id-{uuid.uuid4().hex[:8]}", "credentials": creds}
        return self._ok(self.client.post("/api/cloud-identities", json=body, headers=OPERATOR),
                        201)

    def vineyard(self) -> dict[str, Any]:
        body = {"name": f"vy-{uuid.uuid4().hex[:8]}"}
        return self._ok(self.client.post("/api/vineyards", json=body, headers=OPERATOR), 201)

    def vine(self, *, databases: int = 1, caches: int = 1, identity: bool = True,
             **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "vineyard_id": self.vineyard()["id"],
            "project_name": "api-backend",
            "environment_stage": "production",
            "terraform": {"module": "vine-basic", "variables": {}},
            "cluster": {"cluster_version": "1.30", "instance_types": ["m6i.large"],
                        "node_min_size": 1, "node_max_size": 3, "node_desired_size": 2},
            "databases": [{"name": f"db{i}", "engine": "aurora-postgresql"}
                          for i in range(databases)],
            "caches": [{"name": f"cache{i}", "engine": "redis"} for i in range(caches)],
            **fields,
        }
        if identity and "cloud_identity_id" not in fields:
            body["cloud_identity_id"] = self.identity()["id"]
        return self._ok(self.client.post("/api/vines", json=body, headers=OPERATOR), 201)

    def get_vine(self, vine_id: str) -> dict[str, Any]:
        return self._ok(self.client.get(f"/api/vines/{vine_id}", headers=OPERATOR), 200)

    def enqueue(self, job_type: str = "PLAN", **fields: Any) -> dict[str, Any]:
        body = {"job_type": job_type, **fields}
        return self._ok(self.client.post("/api/jobs", json=body, headers=OPERATOR), 201)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._ok(self.client.get(f"/api/jobs/{job_id}", headers=OPERATOR), 200)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._ok(self.client.post(f"/api/jobs/{job_id}/cancel", headers=OPERATOR), 200)

    def worker(self, **fields: Any) -> WorkerCreds:
        body = {"name": f"w-{uuid.uuid4().hex[:8]}", "mode": "self-hosted", **fields}
        data = self._ok(self.client.post("/api/workers/register", json=body, headers=OPERATOR),
                        201)
        return WorkerCreds(data["worker_id"], data["worker_token"])

    # agent
    def heartbeat(self, worker: WorkerCreds, **body: Any) -> dict[str, Any]:
        return self._ok(self.client.post("/api/workers/heartbeat", json=body,
                                         headers=worker.headers), 200)

    def claim(self, worker: WorkerCreds) -> dict[str, Any] | None:
        response = self.client.post("/api/jobs/claim", headers=worker.headers)
        if response.status_code == 204:
            assert response.data == b""
            return None
        return self._ok(response, 200)

    def status(self, worker: WorkerCreds, job_id: str, status: str, expect: int = 200,
               **body: Any) -> dict[str, Any]:
        return self._ok(self.client.put(f"/api/jobs/{job_id}/status",
                                        json={"status": status, **body},
                                        headers=worker.headers), expect)

    def log(self, worker: WorkerCreds, job_id: str, chunk: str, expect: int = 201,
            **body: Any) -> dict[str, Any]:
        return self._ok(self.client.post(f"/api/jobs/{job_id}/logs",
                                         json={"log_chunk": chunk, **body},
                                         headers=worker.headers), expect)

    def claimed(self, job_type: str = "PLAN", **enqueue: Any) -> tuple[WorkerCreds, dict]:
        """A fresh worker holding a freshly enqueued job."""
        job = self.enqueue(job_type, **enqueue)
        worker = self.worker()
        claim = self.claim(worker)
        assert claim is not None and claim["job"]["id"] == job["id"]
        return worker, claim["job"]


@pytest.fixture
def driver(client: FlaskClient) -> Driver:
    return Driver(client)

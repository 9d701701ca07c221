"""A full job cycle against the real server process, over real HTTP on 127.0.0.1.

An operator (bearer token) registers a worker, creates an identity, a vineyard and a vine, and
enqueues a PLAN; the worker (its own headers, nothing shared with the operator) heartbeats,
claims, streams metadata and logs, uploads a plan of a few MiB, and reports SUCCESS. A DEPLOY of
that plan is claimed, downloads the plan as the DEPLOY's holder and reports SUCCESS with
Terraform outputs, and the vine ends ACTIVE with the outputs in its component rows. Then the
plan-artifact limits: a 50 MiB + 1 byte upload is refused with a 413 JSON answer (not a reset
connection), and a chunked upload (no Content-Length) is stored.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.server import LiveServer

ROLE_ARN = "arn:aws:iam::123456789012:role/GrapeProvisionerRole"
MAX_PLAN = 52_428_800
MiB = 1024 * 1024


def _ok(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.text[:500])
    if status == 204:
        return None
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["code"] == status
    return body


class Operator:
    def __init__(self, server: LiveServer) -> None:
        self.http = server.client(headers=server.operator_headers)

    def post(self, path: str, body: dict[str, Any], status: int = 201) -> Any:
        return _ok(self.http.post(path, json=body), status)

    def get(self, path: str) -> Any:
        return _ok(self.http.get(path), 200)

    def register(self) -> tuple[str, str]:
        data = self.post("/api/workers/register", {
            "name": f"tendril-{uuid.uuid4().hex[:6]}", "mode": "self-hosted",
            "metadata": {"region": "eu-west-1"}})
        assert data["worker_token"].startswith("vtw_")
        assert "token_hash" not in data["worker"]
        return data["worker_id"], data["worker_token"]

    def vine(self) -> dict[str, Any]:
        identity = self.post("/api/cloud-identities", {
            "provider": "aws", "name": f"prod-{uuid.uuid4().hex[:6]}",
            "credentials": {"role_arn": ROLE_ARN}})
        vineyard = self.post("/api/vineyards", {"name": f"vy-{uuid.uuid4().hex[:8]}"})
        return self.post("/api/vines", {
            "vineyard_id": vineyard["id"], "cloud_identity_id": identity["id"],
            "project_name": "shop", "environment_stage": "production", "region": "eu-west-1",
            "terraform": {"module": "vine-basic", "variables": {"replicas": 2}},
            "cluster": {"cluster_version": "1.30", "instance_types": ["m6i.large"],
                        "node_min_size": 1, "node_max_size": 3, "node_desired_size": 2},
            "databases": [{"name": "main", "engine": "aurora-postgresql"}],
            "caches": [{"name": "sessions", "engine": "redis"}],
        })

    def close(self) -> None:
        self.http.close()


class Worker:
    def __init__(self, server: LiveServer, worker_id: str, token: str) -> None:
        self.id = worker_id
        self.http = server.client(headers={"X-Worker-ID": worker_id, "X-Worker-Token": token,
                                           "User-Agent": "grape-worker/0.1.0"})

    def heartbeat(self, **body: Any) -> dict[str, Any]:
        return _ok(self.http.post("/api/workers/heartbeat", json=body), 200)

    def claim(self) -> dict[str, Any] | None:
        response = self.http.post("/api/jobs/claim")
        if response.status_code == 204:
            assert response.content == b""
            return None
        return _ok(response, 200)

    def status(self, job_id: str, status: str, **body: Any) -> dict[str, Any]:
        return _ok(self.http.put(f"/api/jobs/{job_id}/status",
                                 json={"status": status, **body}), 200)

    def log(self, job_id: str, chunk: str, seq: int, stream: str = "STDOUT") -> int:
        return _ok(self.http.post(f"/api/jobs/{job_id}/logs", json={
            "log_chunk": chunk, "stream_type": stream, "seq": seq}), 201)["id"]

    def upload(self, job_id: str, content: bytes | Iterator[bytes]) -> httpx.Response:
        return self.http.post(f"/api/jobs/{job_id}/plan-artifact", content=content,
                              headers={"Content-Type": "application/octet-stream"})

    def download(self, job_id: str) -> tuple[httpx.Response, bytes, str]:
        digest = hashlib.sha256()
        parts = []
        with self.http.stream("GET", f"/api/jobs/{job_id}/plan-artifact") as response:
            for chunk in response.iter_bytes():
                digest.update(chunk)
                parts.append(chunk)
        return response, b"".join(parts), digest.hexdigest()

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def operator(server: LiveServer) -> Iterator[Operator]:
    op = Operator(server)
    yield op
    op.close()


@pytest.fixture
def worker(server: LiveServer, operator: Operator) -> Iterator[Worker]:
    w = Worker(server, *operator.register())
    yield w
    w.close()


def test_plan_then_deploy_over_http(server: LiveServer, operator: Operator,
                                    worker: Worker) -> None:
    beat = worker.heartbeat(version="0.1.0")
    assert beat["status"] == "ONLINE" and beat["cancel_requested"] == []
    me = _ok(worker.http.get(f"/api/workers/{worker.id}"), 200)
    assert me["status"] == "ONLINE" and me["version"] == "0.1.0"

    vine = operator.vine()
    assert vine["status"] == "DRAFT"
    plan = operator.post("/api/jobs", {"job_type": "PLAN", "vine_id": vine["id"],
                                       "assigned_worker_id": worker.id})
    assert plan["status"] == "QUEUED"
    assert operator.get(f"/api/vines/{vine['id']}")["status"] == "QUEUED"

    # PLAN: claim, metadata, logs, the plan file
    claim = worker.claim()
    assert claim is not None and claim["job"]["id"] == plan["id"]
    assert claim["job"]["status"] == "CLAIMED"
    assert claim["cloud_identity"]["role_arn"] == ROLE_ARN
    assert claim["cloud_identity"]["account_id"] == "123456789012"
    snapshot = claim["job"]["config_snapshot"]
    assert snapshot["project_name"] == "shop" and snapshot["terraform"]["module"] == "vine-basic"
    assert worker.claim() is None  # nothing else queued for this worker

    worker.status(plan["id"], "PROCESSING", execution_metadata={"phase": "init"})
    processing = worker.status(plan["id"], "PROCESSING",
                               execution_metadata={"phase": "plan", "progress": 50})["job"]
    assert processing["status"] == "PROCESSING" and processing["started_at"]
    assert processing["execution_metadata"] == {"phase": "plan", "progress": 50}
    first = worker.log(plan["id"], "Initializing the backend...\n", seq=0)
    second = worker.log(plan["id"], "Plan: 4 to add, 0 to change, 0 to destroy.\n", seq=1)
    assert second > first
    again = _ok(worker.http.post(f"/api/jobs/{plan['id']}/logs", json={
        "log_chunk": "Plan: 4 to add, 0 to change, 0 to destroy.\n", "seq": 1}), 200)
    assert again == {"success": True, "id": second, "duplicate": True}

    plan_bytes = os.urandom(3 * MiB + 12345)
    plan_sha = hashlib.sha256(plan_bytes).hexdigest()
    stored = _ok(worker.upload(plan["id"], plan_bytes), 201)
    assert stored == {"key": f"{plan['id']}/terraform.plan.out", "size": len(plan_bytes),
                      "sha256": plan_sha}
    response, body, digest = worker.download(plan["id"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(len(plan_bytes))
    assert response.headers["etag"] == f'"{plan_sha}"'
    assert "terraform.plan.out" in response.headers["content-disposition"]
    assert digest == plan_sha and body == plan_bytes

    done = worker.status(plan["id"], "SUCCESS", execution_metadata={
        "plan_summary": {"add": 4, "change": 0, "destroy": 0},
        "plan_artifact": {"sha256": plan_sha, "size": len(plan_bytes)}})["job"]
    assert done["status"] == "SUCCESS" and done["completed_at"]
    assert done["execution_metadata"]["phase"] == "plan"  # merged shallowly
    assert operator.get(f"/api/vines/{vine['id']}")["status"] == "DRAFT"  # back to before
    logs = operator.get(f"/api/jobs/{plan['id']}/logs")
    assert "".join(c["log_chunk"] for c in logs["logs"]) == (
        "Initializing the backend...\nPlan: 4 to add, 0 to change, 0 to destroy.\n")

    # DEPLOY of that plan: the holder of the DEPLOY may read the PLAN's artifact
    deploy = operator.post("/api/jobs", {"job_type": "DEPLOY", "vine_id": vine["id"],
                                         "plan_job_id": plan["id"],
                                         "assigned_worker_id": worker.id})
    assert deploy["plan_job_id"] == plan["id"]
    claim = worker.claim()
    assert claim is not None and claim["job"]["id"] == deploy["id"]
    worker.status(deploy["id"], "PROCESSING", execution_metadata={"phase": "apply"})
    provisioning = operator.get(f"/api/vines/{vine['id']}")
    assert provisioning["status"] == "PROVISIONING"
    assert provisioning["cluster"]["status"] == "CREATING"
    response, body, digest = worker.download(plan["id"])
    assert response.status_code == 200 and digest == plan_sha
    assert response.headers["etag"] == f'"{plan_sha}"'
    worker.log(deploy["id"], "Apply complete! Resources: 4 added, 0 changed, 0 destroyed.\n", 0)

    outputs = {
        "eks_cluster_name": {"value": "shop-production", "type": "string", "sensitive": False},
        "eks_cluster_endpoint": {"value": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
                                 "type": "string", "sensitive": False},
        "eks_cluster_arn": "arn:aws:eks:eu-west-1:123456789012:cluster/shop-production",
        "argocd_url": "https://argocd.shop.example",
        "argocd_admin_password": {"value": "s3cret", "type": "string", "sensitive": True},
        "rds_cluster_endpoint": "shop.cluster-abc.eu-west-1.rds.amazonaws.com",
        "rds_cluster_reader_endpoint": "shop.cluster-ro-abc.eu-west-1.rds.amazonaws.com",
        "rds_cluster_identifier": "shop-main",
        "rds_cluster_arn": "arn:aws:rds:eu-west-1:123456789012:cluster:shop-main",
        "rds_master_credentials_secret_arn":
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-main-master",
        "redis_primary_endpoint_address": "shop-sessions.abc.cache.amazonaws.com",
        "redis_reader_endpoint_address": "shop-sessions-ro.abc.cache.amazonaws.com",
    }
    done = worker.status(deploy["id"], "SUCCESS",
                         execution_metadata={"outputs": outputs})["job"]
    assert done["status"] == "SUCCESS"

    final = operator.get(f"/api/vines/{vine['id']}")
    assert final["status"] == "ACTIVE", final["status_message"]
    assert final["status_message"] is None
    cluster = final["cluster"]
    assert cluster["status"] == "ACTIVE"
    assert cluster["cluster_name"] == "shop-production"
    assert cluster["cluster_endpoint"] == "https://ABC.gr7.eu-west-1.eks.amazonaws.com"
    assert cluster["cluster_arn"] == outputs["eks_cluster_arn"]
    assert cluster["argocd_url"] == "https://argocd.shop.example"
    (database,) = final["databases"]
    assert database["status"] == "ACTIVE"
    assert database["endpoint"] == outputs["rds_cluster_endpoint"]
    assert database["reader_endpoint"] == outputs["rds_cluster_reader_endpoint"]
    assert database["cluster_identifier"] == "shop-main"
    assert database["cluster_arn"] == outputs["rds_cluster_arn"]
    assert database["master_credentials_secret_arn"] == \
        outputs["rds_master_credentials_secret_arn"]
    (cache,) = final["caches"]
    assert cache["status"] == "ACTIVE"
    assert cache["endpoint"] == outputs["redis_primary_endpoint_address"]
    assert cache["reader_endpoint"] == outputs["redis_reader_endpoint_address"]

    # the worker's view afterwards: the DEPLOY job, terminal and idempotent
    again = worker.status(deploy["id"], "SUCCESS")["job"]
    assert again["status"] == "SUCCESS"
    assert _ok(worker.http.get(f"/api/jobs/{deploy['id']}"), 200)["id"] == deploy["id"]
    listed = operator.get(f"/api/jobs?vine_id={vine['id']}")
    assert {j["id"] for j in listed["jobs"]} == {plan["id"], deploy["id"]}


@pytest.fixture
def held_job(operator: Operator, worker: Worker) -> str:
    """A PLAN job held (PROCESSING) by ``worker``."""
    vine = operator.vine()
    job = operator.post("/api/jobs", {"job_type": "PLAN", "vine_id": vine["id"],
                                      "assigned_worker_id": worker.id})
    claim = worker.claim()
    assert claim is not None and claim["job"]["id"] == job["id"]
    worker.status(job["id"], "PROCESSING")
    return str(job["id"])


def _chunks(total: int, piece: int = 256 * 1024) -> Iterator[bytes]:
    """``total`` pseudo-random bytes in pieces, as a generator (httpx sends it chunked)."""
    block = os.urandom(piece)
    sent = 0
    while sent < total:
        n = min(piece, total - sent)
        yield block[:n]
        sent += n


def test_upload_over_the_limit_is_413_json(server: LiveServer, worker: Worker,
                                           held_job: str) -> None:
    # a previous, valid artifact must survive the refused upload
    small = os.urandom(1000)
    _ok(worker.upload(held_job, small), 201)

    too_big = bytes(MAX_PLAN + 1)
    response = worker.upload(held_job, too_big)  # Content-Length: 52428801
    body = _error(response, 413)
    assert body["error"] == "File too large (max 50MB)"

    _, content, _ = worker.download(held_job)
    assert content == small
    # the connection is still usable, and the server too
    assert worker.heartbeat()["success"] is True


def test_chunked_upload_without_content_length(server: LiveServer, worker: Worker,
                                               held_job: str) -> None:
    total = 5 * MiB + 7
    sent = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for piece in _chunks(total):
            sent.update(piece)
            yield piece

    request = worker.http.build_request(
        "POST", f"/api/jobs/{held_job}/plan-artifact", content=body(),
        headers={"Content-Type": "application/octet-stream"})
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    stored = _ok(worker.http.send(request), 201)
    assert stored["size"] == total and stored["sha256"] == sent.hexdigest()
    response, _, digest = worker.download(held_job)
    assert digest == sent.hexdigest()
    assert response.headers["content-length"] == str(total)


def test_chunked_upload_over_the_limit_is_413_json(server: LiveServer, worker: Worker,
                                                   held_job: str) -> None:
    request = worker.http.build_request(
        "POST", f"/api/jobs/{held_job}/plan-artifact", content=_chunks(MAX_PLAN + 1),
        headers={"Content-Type": "application/octet-stream"})
    assert "content-length" not in request.headers
    body = _error(worker.http.send(request), 413)
    assert body["error"] == "File too large (max 50MB)"
    missing = worker.http.get(f"/api/jobs/{held_job}/plan-artifact")
    assert _error(missing, 404)["error"] == "Plan artifact not found"


def test_bad_requests_are_json_over_http(server: LiveServer, worker: Worker) -> None:
    """A few of tests/api/test_bad_input.py's cases through the real server's HTTP stack."""
    http = worker.http
    _error(http.post("/api/workers/heartbeat", content=b"{nope"), 400)
    _error(http.post("/api/workers/heartbeat", content=b"[" * 10_000), 400)
    _error(http.get("/api/jobs/not-a-uuid"), 404)
    _error(http.get("/no/such/page"), 404)
    _error(http.delete("/api/jobs/claim"), 405)
    _error(httpx.get(f"{server.url}/api/workers"), 401)
    _error(http.post("/api/workers/heartbeat", content=b'{"version": "' + b"a" * 9 * MiB
                     + b'"}'), 413)

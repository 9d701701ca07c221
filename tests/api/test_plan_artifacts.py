"""worker-api.md "Plan artifacts" and "Reading a job": upload (raw, multipart, chunked), the
50 MiB limit, download headers, and who may read a plan and its job."""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.worker_helpers import OPERATOR, Driver, WorkerCreds, assert_error

MAX = 52_428_800
TOO_LARGE = "File too large (max 50MB)"
PLAN_BYTES = b"PK\x03\x04 terraform plan \x00\x01\x02" * 100


class GeneratedBody(io.RawIOBase):
    """``size`` bytes produced on the fly (no whole body in the test's memory either)."""

    def __init__(self, size: int, fill: bytes = b"p") -> None:
        self.remaining, self.fill = size, fill
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.remaining)
        data = self.fill * n
        buffer[:n] = data
        self.digest.update(data)
        self.remaining -= n
        return n


def upload(client: FlaskClient, worker: WorkerCreds, job_id: str, data: bytes,
           content_type: str = "application/octet-stream") -> Any:
    return client.post(f"/api/jobs/{job_id}/plan-artifact", data=data, content_type=content_type,
                       headers=worker.headers)


def upload_chunked(client: FlaskClient, worker: WorkerCreds, job_id: str, body: Any) -> Any:
    """A body without Content-Length (Transfer-Encoding: chunked, as a streaming client sends)."""
    return client.post(
        f"/api/jobs/{job_id}/plan-artifact",
        headers={**worker.headers, "Transfer-Encoding": "chunked",
                 "Content-Type": "application/octet-stream"},
        # the test client would measure a seekable stream; hand the body to the app directly,
        # as a WSGI server that de-chunks the request does
        environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True},
    )


def download(client: FlaskClient, job_id: str, headers: dict[str, str]) -> Any:
    return client.get(f"/api/jobs/{job_id}/plan-artifact", headers=headers)


def assert_download(response: Any, data: bytes) -> None:
    assert response.status_code == 200, response.get_json()
    digest = hashlib.sha256(data).hexdigest()
    assert response.data == data
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Disposition"] == \
        'attachment; filename="terraform.plan.out"'
    assert response.headers["ETag"] == f'"{digest}"'


@pytest.fixture
def plan(driver: Driver) -> tuple[WorkerCreds, dict[str, Any]]:
    vine = driver.vine()
    return driver.claimed("PLAN", vine_id=vine["id"])


# -- round trip -----------------------------------------------------------------------------


def test_round_trip(client: FlaskClient, plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    response = upload(client, worker, job["id"], PLAN_BYTES)
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {"key": f"{job['id']}/terraform.plan.out",
                                   "size": len(PLAN_BYTES),
                                   "sha256": hashlib.sha256(PLAN_BYTES).hexdigest()}
    assert_download(download(client, job["id"], worker.headers), PLAN_BYTES)
    assert_download(download(client, job["id"], OPERATOR), PLAN_BYTES)


def test_upload_while_processing_and_reupload_replaces(
        client: FlaskClient, driver: Driver, plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    driver.status(worker, job["id"], "PROCESSING")
    assert upload(client, worker, job["id"], b"first plan").status_code == 201
    second = upload(client, worker, job["id"], b"second, longer plan")
    assert second.status_code == 201
    assert second.get_json()["size"] == len(b"second, longer plan")
    assert_download(download(client, job["id"], OPERATOR), b"second, longer plan")
    # still there once the job succeeded
    driver.status(worker, job["id"], "SUCCESS")
    assert_download(download(client, job["id"], worker.headers), b"second, longer plan")


def test_multipart_file_part(client: FlaskClient,
                             plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    response = client.post(f"/api/jobs/{job['id']}/plan-artifact", headers=worker.headers,
                           data={"file": (io.BytesIO(PLAN_BYTES), "terraform.plan.out"),
                                 "note": "ignored"},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["sha256"] == hashlib.sha256(PLAN_BYTES).hexdigest()
    assert_download(download(client, job["id"], OPERATOR), PLAN_BYTES)


def test_multipart_without_file_part_is_400(client: FlaskClient,
                                            plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    response = client.post(f"/api/jobs/{job['id']}/plan-artifact", headers=worker.headers,
                           data={"plan": (io.BytesIO(PLAN_BYTES), "terraform.plan.out")},
                           content_type="multipart/form-data")
    assert_error(response, 400)
    assert_error(download(client, job["id"], OPERATOR), 404, "Plan artifact not found")


@pytest.mark.parametrize("content_type", ["application/json", "text/plain",
                                          "application/x-www-form-urlencoded"])
def test_sloppy_content_type_is_raw_bytes(client: FlaskClient, content_type: str,
                                          plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    data = b"\x00\x01 not json = at all & \xff"
    response = upload(client, worker, job["id"], data, content_type)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["size"] == len(data)
    assert_download(download(client, job["id"], OPERATOR), data)


def test_chunked_upload_without_content_length(
        client: FlaskClient, plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    body = GeneratedBody(3 * 1024 * 1024 + 7)
    response = upload_chunked(client, worker, job["id"], body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["size"] == 3 * 1024 * 1024 + 7
    assert response.get_json()["sha256"] == body.digest.hexdigest()


@pytest.mark.parametrize("chunked", [False, True])
def test_empty_body_is_400(client: FlaskClient, chunked: bool,
                           plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    if chunked:
        response = upload_chunked(client, worker, job["id"], io.BytesIO(b""))
    else:
        response = upload(client, worker, job["id"], b"")
    assert_error(response, 400, "Empty body")
    assert_error(download(client, job["id"], OPERATOR), 404, "Plan artifact not found")


# -- the 50 MiB limit -----------------------------------------------------------------------


def test_exactly_50_mib_accepted(client: FlaskClient,
                                 plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    data = b"\xab" * MAX
    response = upload(client, worker, job["id"], data)
    assert response.status_code == 201, response.get_json()
    digest = hashlib.sha256(data).hexdigest()
    assert response.get_json()["size"] == MAX and response.get_json()["sha256"] == digest
    got = download(client, job["id"], worker.headers)
    assert got.status_code == 200
    assert got.headers["Content-Length"] == str(MAX)
    assert got.headers["ETag"] == f'"{digest}"'
    assert hashlib.sha256(got.data).hexdigest() == digest


@pytest.mark.parametrize("chunked", [False, True])
def test_one_byte_more_refused_and_previous_kept(
        client: FlaskClient, chunked: bool, plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    assert upload(client, worker, job["id"], PLAN_BYTES).status_code == 201
    if chunked:
        response = upload_chunked(client, worker, job["id"], GeneratedBody(MAX + 1))
    else:
        response = upload(client, worker, job["id"], b"\xab" * (MAX + 1))
    assert_error(response, 413, TOO_LARGE)
    assert_download(download(client, job["id"], OPERATOR), PLAN_BYTES)


def test_oversized_first_upload_leaves_nothing(client: FlaskClient,
                                               plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    assert_error(upload_chunked(client, worker, job["id"], GeneratedBody(MAX + 1024 * 1024)),
                 413, TOO_LARGE)
    assert_error(download(client, job["id"], OPERATOR), 404, "Plan artifact not found")


# -- access ---------------------------------------------------------------------------------


def test_no_artifact_is_404(client: FlaskClient,
                            plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    worker, job = plan
    assert_error(download(client, job["id"], worker.headers), 404, "Plan artifact not found")
    assert_error(download(client, job["id"], OPERATOR), 404, "Plan artifact not found")


def test_unknown_job(client: FlaskClient, driver: Driver) -> None:
    worker = driver.worker()
    assert_error(upload(client, worker, str(uuid.uuid4()), b"x"), 404, "Job not found")
    assert_error(download(client, str(uuid.uuid4()), OPERATOR), 404, "Job not found")


def test_upload_by_another_worker_is_409(client: FlaskClient, driver: Driver,
                                         plan: tuple[WorkerCreds, dict[str, Any]]) -> None:
    _, job = plan
    assert_error(upload(client, driver.worker(), job["id"], b"x"), 409,
                 "Job is not held by this worker")
    assert_error(download(client, job["id"], OPERATOR), 404, "Plan artifact not found")


def test_deploy_holder_reads_its_plan(client: FlaskClient, driver: Driver) -> None:
    vine = driver.vine()
    planner, plan_job = driver.claimed("PLAN", vine_id=vine["id"])
    assert upload(client, planner, plan_job["id"], PLAN_BYTES).status_code == 201
    driver.status(planner, plan_job["id"], "SUCCESS")
    deploy = driver.enqueue("DEPLOY", vine_id=vine["id"], plan_job_id=plan_job["id"])
    stranger = driver.worker()
    # before anyone holds the DEPLOY, no worker but the planner reads the plan
    assert_error(download(client, plan_job["id"], stranger.headers), 404)

    applier = driver.worker()
    claimed = driver.claim(applier)
    assert claimed is not None and claimed["job"]["id"] == deploy["id"]
    assert claimed["job"]["plan_job_id"] == plan_job["id"]
    assert_download(download(client, plan_job["id"], applier.headers), PLAN_BYTES)
    read = client.get(f"/api/jobs/{plan_job['id']}", headers=applier.headers)
    assert read.status_code == 200
    assert read.get_json()["id"] == plan_job["id"]
    assert read.get_json()["status"] == "SUCCESS"

    # other workers see neither the plan nor its job
    assert_error(download(client, plan_job["id"], stranger.headers), 404)
    assert_error(client.get(f"/api/jobs/{plan_job['id']}", headers=stranger.headers), 404,
                 "Job not found")
    assert_error(client.get(f"/api/jobs/{deploy['id']}", headers=stranger.headers), 404,
                 "Job not found")
    # the applier may read but not replace the plan
    assert_error(upload(client, applier, plan_job["id"], b"forged"), 409)
    assert_download(download(client, plan_job["id"], OPERATOR), PLAN_BYTES)


# -- reading a job --------------------------------------------------------------------------


def test_get_job_bare_object(client: FlaskClient, driver: Driver) -> None:
    worker, job = driver.claimed("FETCH_RESOURCES")
    for headers in (worker.headers, OPERATOR):
        response = client.get(f"/api/jobs/{job['id']}", headers=headers)
        assert response.status_code == 200
        body = response.get_json()
        assert "job" not in body and body["id"] == job["id"]
        assert body["status"] == "CLAIMED" and body["worker_id"] == worker.id
    assert_error(client.get(f"/api/jobs/{job['id']}", headers=driver.worker().headers), 404,
                 "Job not found")
    assert_error(client.get(f"/api/jobs/{uuid.uuid4()}", headers=worker.headers), 404,
                 "Job not found")
    queued = driver.enqueue("FETCH_RESOURCES")
    assert_error(client.get(f"/api/jobs/{queued['id']}", headers=worker.headers), 404,
                 "Job not found")

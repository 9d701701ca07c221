"""Every artifact store behind the plan-artifact routes (worker-api.md "Plan artifacts").

The app is built with each store selected by its URI, exactly as the server does
(``app_overrides``: ``artifact_store`` plus the store's settings), against real servers where
the store has one:

* ``file``      — a temp folder;
* ``s3``        — moto in server mode on 127.0.0.1 (boto3 over real HTTP), on a port of its own
  so the test can stop it and start it again;
* ``supabase``  — supabase-py against tests/support/storage_server.py (real HTTP);
* ``fake``      — ``vintner.testing``'s in-memory fake, swapped into the app;
* ``memstore``  — the example plugin, selected by its ``memstore://`` scheme.

For each: a 50 MiB round trip with equal SHA-256 (download streamed, ``ETag``); 50 MiB + 1 →
413 with nothing stored (no object, no temp files / multipart uploads / orphan parts) and the
previous artifact intact; the store going down in the middle of an upload → 503 in the JSON
error shape and the previous artifact intact once it is back; traversal keys refused by the
base class before any backend hook runs; job ids in paths parsed as UUIDs.
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.worker_helpers import OPERATOR, Driver, WorkerCreds, assert_error
from tests.support.leftovers import local_leftovers, s3_leftovers, supabase_leftovers
from tests.support.storage_server import StorageServer
from tests.support.store_servers import RestartableMoto
from vintner.errors import InvalidKey
from vintner.ports.artifacts import ArtifactStore
from vintner.testing.artifact_contract import BAD_KEYS, ExplodingStream, PatternStream
from vintner.testing.fake_stores import InMemoryArtifactStore

pytest_plugins = ["tests.support.fixtures"]

MiB = 1024 * 1024
MAX = 52_428_800
TOO_LARGE = "File too large (max 50MB)"
PLAN_NOT_FOUND = "Plan artifact not found"
PREVIOUS = b"previous terraform plan \x00\x01\xff" * 1000
STORES = ["file", "s3", "supabase", "fake", "memstore"]


# -- the stores -----------------------------------------------------------------------------


@dataclass
class StoreCase:
    """How to build one store into the app, find its debris, and take it down mid-upload."""

    name: str
    overrides: dict[str, Any]
    leftovers: Callable[[ArtifactStore], list[str]]
    #: Make the store fail from now on (None: the store has no way to fail).
    take_down: Callable[[ArtifactStore], None] | None = None
    bring_back: Callable[[ArtifactStore], None] = lambda store: None
    #: While down, reads fail too (the file store's "disk full" still reads).
    reads_fail_when_down: bool = True
    #: The store removes its debris even when it failed. Remote stores cannot while they are
    #: unreachable: S3 keeps an incomplete multipart upload (invisible; a lifecycle rule
    #: removes it), Supabase keeps the parts uploaded so far (unreferenced by any manifest).
    cleans_up_when_down: bool = True
    #: Secrets that must never appear in a response.
    secrets: tuple[str, ...] = ()


def _file_case(tmp_path: Path) -> StoreCase:
    # Root can't be stopped by chmod (the tests may run as root): the store "goes down" as a
    # full disk does — RLIMIT_FSIZE makes the write that crosses 8 MiB fail with EFBIG
    # (Python ignores SIGXFSZ), in the middle of the temp file.
    saved = resource.getrlimit(resource.RLIMIT_FSIZE)

    def take_down(store: ArtifactStore) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 * MiB, saved[1]))

    def bring_back(store: ArtifactStore) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, saved)

    return StoreCase(
        "file", {"artifact_store": (tmp_path / "store").as_uri()}, local_leftovers,
        take_down, bring_back, reads_fail_when_down=False,
    )


def _s3_case(moto: RestartableMoto) -> StoreCase:
    import boto3

    bucket = f"http-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return StoreCase(
        "s3",
        {"artifact_store": f"s3://{bucket}/plans", "s3_endpoint_url": moto.url,
         "s3_region": "us-east-1", "artifact_store_options": {"addressing_style": "path"}},
        s3_leftovers,
        take_down=lambda store: moto.stop(),
        bring_back=lambda store: moto.start(),
        cleans_up_when_down=False,
        secrets=("testing",),  # the fake AWS credentials of aws_test_env
    )


def _supabase_case(server: StorageServer) -> StoreCase:
    def take_down(store: ArtifactStore) -> None:
        server.fail_with = (503, {"statusCode": "503", "error": "unavailable",
                                  "message": "upstream down"})

    def bring_back(store: ArtifactStore) -> None:
        server.fail_with = None

    return StoreCase(
        "supabase",
        {"artifact_store": f"supabase://artifacts/http-{uuid.uuid4().hex[:12]}",
         "supabase_url": server.url, "supabase_service_role_key": server.service_key},
        lambda store: supabase_leftovers(server, store),
        take_down, bring_back, cleans_up_when_down=False, secrets=(server.service_key,),
    )


def _fake_case() -> StoreCase:
    def set_available(value: bool) -> Callable[[ArtifactStore], None]:
        def apply(store: ArtifactStore) -> None:
            store.available = value  # type: ignore[attr-defined]

        return apply

    # The app is built with its default store; the `store` fixture swaps the fake in.
    return StoreCase("fake", {}, lambda store: [], set_available(False), set_available(True))


@pytest.fixture(params=STORES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    name = request.param
    if name == "file":
        yield _file_case(tmp_path)
    elif name == "s3":
        yield _s3_case(request.getfixturevalue("restartable_moto"))
    elif name == "supabase":
        yield _supabase_case(request.getfixturevalue("supabase_storage"))
    elif name == "fake":
        yield _fake_case()
    else:
        scheme = request.getfixturevalue("memstore_plugin")
        namespace = f"http-{uuid.uuid4().hex}"
        yield StoreCase("memstore", {"artifact_store": f"{scheme}://{namespace}"},
                        lambda store: [])
        from vintner_memstore.store import MemStore

        MemStore.forget(namespace)


@pytest.fixture
def app_overrides(case: StoreCase) -> dict[str, Any]:
    return case.overrides


@pytest.fixture
def store(app: Flask, case: StoreCase) -> Iterator[ArtifactStore]:
    """The app's own store instance (the fake is swapped in here)."""
    services = app.extensions["vintner"]
    if case.name == "fake":
        services.artifacts.close()
        services.artifacts = InMemoryArtifactStore()
    expected = {"file": "LocalArtifactStore", "s3": "S3ArtifactStore",
                "supabase": "SupabaseArtifactStore", "fake": "InMemoryArtifactStore",
                "memstore": "MemStore"}[case.name]
    assert type(services.artifacts).__name__ == expected
    yield services.artifacts
    services.artifacts.close()


@pytest.fixture
def plan(driver: Driver, store: ArtifactStore) -> tuple[WorkerCreds, str]:
    """A worker holding a PLAN job: (worker, job id)."""
    worker, job = driver.claimed("PLAN", vine_id=driver.vine()["id"])
    return worker, job["id"]


# -- HTTP helpers -----------------------------------------------------------------------------


class Tripwire(io.RawIOBase):
    """Pass ``inner`` through; call ``action`` once ``at`` bytes have been delivered."""

    def __init__(self, inner: PatternStream, at: int, action: Callable[[], None]) -> None:
        self.inner, self.at, self.action = inner, at, action
        self.delivered = 0
        self.fired = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.inner.readinto(buffer)
        self.delivered += n
        if not self.fired and self.delivered >= self.at:
            self.fired = True
            self.action()
        return n


def url(job_id: str) -> str:
    return f"/api/jobs/{job_id}/plan-artifact"


def upload_sized(client: FlaskClient, worker: WorkerCreds, job_id: str, body: io.RawIOBase,
                 size: int) -> Any:
    """A streamed body with ``Content-Length`` (the stream is handed to the app as is)."""
    return client.post(
        url(job_id), headers={**worker.headers, "Content-Type": "application/octet-stream"},
        environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(size)},
    )


def upload_chunked(client: FlaskClient, worker: WorkerCreds, job_id: str,
                   body: io.RawIOBase) -> Any:
    """A streamed body without ``Content-Length`` (as a de-chunking WSGI server passes it)."""
    return client.post(
        url(job_id),
        headers={**worker.headers, "Transfer-Encoding": "chunked",
                 "Content-Type": "application/octet-stream"},
        environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True},
    )


@dataclass
class Download:
    status: int
    headers: Any
    size: int
    sha256: str
    chunks: int


def download(client: FlaskClient, job_id: str, headers: dict[str, str] = OPERATOR) -> Download:
    """GET the plan without buffering it: hash the chunks as the app yields them."""
    response = client.get(url(job_id), headers=headers, buffered=False)
    digest, size, chunks = hashlib.sha256(), 0, 0
    try:
        for chunk in response.response:
            digest.update(chunk)
            size += len(chunk)
            chunks += 1
    finally:
        response.close()
    return Download(response.status_code, response.headers, size, digest.hexdigest(), chunks)


def assert_plan(client: FlaskClient, job_id: str, data: bytes) -> None:
    got = download(client, job_id)
    assert got.status == 200
    assert (got.size, got.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert got.headers["ETag"] == f'"{got.sha256}"'


def assert_no_secrets(case: StoreCase, response: Any) -> None:
    for secret in case.secrets:
        assert secret not in response.get_data(as_text=True)


# -- round trip ---------------------------------------------------------------------------------


def test_50_mib_round_trip(client: FlaskClient, store: ArtifactStore,
                           plan: tuple[WorkerCreds, str]) -> None:
    worker, job_id = plan
    body = PatternStream(MAX, seed=50, max_read=MiB)
    response = upload_sized(client, worker, job_id, body, MAX)
    assert response.status_code == 201, response.get_json()
    sha = body.hexdigest()
    assert response.get_json() == {"key": f"{job_id}/terraform.plan.out", "size": MAX,
                                   "sha256": sha}
    assert store.exists(f"{job_id}/terraform.plan.out")

    got = download(client, job_id, worker.headers)
    assert got.status == 200
    assert (got.size, got.sha256) == (MAX, sha)
    assert got.chunks > 1, "the download must be streamed in chunks"
    assert got.headers["Content-Length"] == str(MAX)
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["ETag"] == f'"{sha}"'


# -- the limit ----------------------------------------------------------------------------------


def test_one_byte_over_50_mib_stores_nothing_and_keeps_previous(
        client: FlaskClient, case: StoreCase, store: ArtifactStore,
        plan: tuple[WorkerCreds, str]) -> None:
    worker, job_id = plan
    key = f"{job_id}/terraform.plan.out"

    # No Content-Length: the store streams 50 MiB and the reader refuses the next byte.
    assert_error(upload_chunked(client, worker, job_id, PatternStream(MAX + 1, max_read=MiB)),
                 413, TOO_LARGE)
    assert not store.exists(key)
    assert_error(client.get(url(job_id), headers=OPERATOR), 404, PLAN_NOT_FOUND)
    assert case.leftovers(store) == []

    assert upload_sized(client, worker, job_id, io.BytesIO(PREVIOUS),  # type: ignore[arg-type]
                        len(PREVIOUS)).status_code == 201
    # Again over a previous artifact ...
    assert_error(upload_chunked(client, worker, job_id, PatternStream(MAX + 1, max_read=MiB)),
                 413, TOO_LARGE)
    # ... and with Content-Length, refused before the store is called.
    assert_error(upload_sized(client, worker, job_id, PatternStream(MAX + 1, max_read=MiB),
                              MAX + 1), 413, TOO_LARGE)
    assert_plan(client, job_id, PREVIOUS)
    assert case.leftovers(store) == []


# -- the store goes down -------------------------------------------------------------------------


def test_store_down_during_upload_is_503_and_keeps_previous(
        client: FlaskClient, case: StoreCase, store: ArtifactStore,
        plan: tuple[WorkerCreds, str]) -> None:
    if case.take_down is None:
        pytest.skip(f"the {case.name} store has no way to fail")
    worker, job_id = plan
    assert upload_sized(client, worker, job_id, io.BytesIO(PREVIOUS),  # type: ignore[arg-type]
                        len(PREVIOUS)).status_code == 201
    take_down = case.take_down
    # 12 MiB: past the first S3 part (5 MiB) and the first Supabase part (4 MiB) when the
    # store goes down, 6 MiB into the body.
    body = Tripwire(PatternStream(12 * MiB, max_read=MiB), 6 * MiB, lambda: take_down(store))
    try:
        response = upload_sized(client, worker, job_id, body, 12 * MiB)
        assert body.fired
        error = assert_error(response, 503)
        assert set(error) == {"error", "code"}
        assert_no_secrets(case, response)
        if case.reads_fail_when_down:
            down = client.get(url(job_id), headers=OPERATOR)
            assert_error(down, 503)
            assert_no_secrets(case, down)
    finally:
        case.bring_back(store)
    assert_plan(client, job_id, PREVIOUS)
    if case.cleans_up_when_down:
        assert case.leftovers(store) == []
    # ... and the store works again for the next upload.
    assert upload_sized(client, worker, job_id, io.BytesIO(b"next"), 4).status_code == 201  # type: ignore[arg-type]
    assert_plan(client, job_id, b"next")


# -- keys and ids ---------------------------------------------------------------------------------


def test_bad_keys_are_refused_by_the_base_class(
        store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's own store instance: no traversal key reaches a backend hook."""
    touched: list[str] = []
    for hook in ("_put", "_open", "_delete", "_exists"):
        monkeypatch.setattr(store, hook, lambda *a, _h=hook, **k: touched.append(_h))
    for key in [*BAD_KEYS, "../../etc/passwd", "job/../../x", "/tmp/x", "a/..", "..%2Fx"]:
        for call in (lambda k: store.put(k, ExplodingStream()),  # type: ignore[arg-type]
                     store.open, store.delete, store.exists, store.get_bytes):
            with pytest.raises(InvalidKey):
                call(key)
    assert touched == []


RAW_IDS = ["..", "..%2F..%2Fetc", "%2e%2e", "not-a-uuid", "..%5Cx", "x%00y",
           "00000000-0000-0000-0000-000000000000%2F..", "%2Fetc%2Fpasswd"]


@pytest.mark.parametrize("raw", RAW_IDS)
def test_job_ids_in_paths_are_parsed_as_uuids(
        client: FlaskClient, driver: Driver, store: ArtifactStore, raw: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    worker = driver.worker()
    touched: list[str] = []
    for method in ("put", "open", "delete", "exists"):
        monkeypatch.setattr(store, method, lambda *a, _m=method, **k: touched.append(_m))
    for response in (
        client.post(f"/api/jobs/{raw}/plan-artifact", data=b"x", headers=worker.headers,
                    content_type="application/octet-stream"),
        client.get(f"/api/jobs/{raw}/plan-artifact", headers=OPERATOR),
        client.get(f"/api/jobs/{raw}/plan-artifact", headers=worker.headers),
    ):
        assert_error(response, 404)
    assert touched == []


def test_non_canonical_job_id_uses_the_canonical_key(
        client: FlaskClient, store: ArtifactStore, plan: tuple[WorkerCreds, str]) -> None:
    worker, job_id = plan
    response = upload_sized(client, worker, job_id.upper(), io.BytesIO(b"plan"), 4)  # type: ignore[arg-type]
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["key"] == f"{uuid.UUID(job_id)}/terraform.plan.out"
    assert store.exists(f"{job_id}/terraform.plan.out")
    assert_plan(client, f"{{{job_id}}}", b"plan")


# -- the real server process ---------------------------------------------------------------------


def test_real_server_answers_503_when_the_store_fails_with_body_unread(tmp_path: Path) -> None:
    """`vintner serve` (Flask's server and gunicorn): the Supabase store is unreachable, so
    the upload fails after the first 4 MiB part while 8 MiB of the body are still unread; the
    client still gets the 503 JSON (not a reset connection), the connection stays usable, and
    the server prints no traceback."""
    import httpx

    from tests.support.server import free_port, running_server

    key = "service-role-" + uuid.uuid4().hex
    env = {"VINTNER_ARTIFACT_STORE": "supabase://artifacts/down",
           "SUPABASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
           "SUPABASE_SERVICE_ROLE_KEY": key,
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    body = os.urandom(12 * MiB)
    for mode in ("development", "production"):
        with running_server(tmp_path / mode, mode=mode, env=env,
                            args=["--workers", "1"] if mode == "production" else []) as server:
            op = server.client(headers=server.operator_headers)
            worker_reg = op.post("/api/workers/register",
                                 json={"name": "w", "mode": "self-hosted"}).json()
            job = op.post("/api/jobs", json={"job_type": "FETCH_RESOURCES",
                                             "assigned_worker_id": worker_reg["worker_id"]})
            assert job.status_code == 201, job.text
            headers = {"X-Worker-ID": worker_reg["worker_id"],
                       "X-Worker-Token": worker_reg["worker_token"]}
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as worker:
                job_id = worker.post("/api/jobs/claim").json()["job"]["id"]
                for _ in range(2):
                    response = worker.post(f"/api/jobs/{job_id}/plan-artifact", content=body,
                                           headers={"Content-Type": "application/octet-stream"})
                    assert response.status_code == 503, response.text
                    assert set(response.json()) == {"error", "code"}
                    assert response.json()["code"] == 503
                    assert key not in response.text
            op.close()
            assert key not in server.stderr_text()

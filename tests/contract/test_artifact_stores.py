"""The artifact-store contract, run against every store Vintner ships or documents.

* ``file``      — a temp folder
* ``s3``        — moto in server mode on 127.0.0.1 (real boto3 over real HTTP)
* ``supabase``  — supabase-py against tests/support/storage_server.py (real HTTP)
* the in-memory fake of ``vintner.testing``
* ``memstore``  — the example plugin, installed as a package and selected by URI scheme

Each store is built through the registry from its URI, as the server does. Below the contract
classes: backend-specific checks (error translation, memory bounds, no debris).
"""

from __future__ import annotations

import hashlib
import io
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.leftovers import local_leftovers, s3_leftovers, supabase_leftovers
from tests.support.storage_server import StorageServer
from vintner.errors import ArtifactNotFound, ConfigError, StoreUnavailable
from vintner.ports.artifacts import ArtifactStore
from vintner.registry import load_artifact_store
from vintner.testing.artifact_contract import ArtifactStoreContract, PatternStream
from vintner.testing.fake_stores import InMemoryArtifactStore

pytest_plugins = ["tests.support.fixtures"]

MiB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- file ---------------------------------------------------------------------------------------


class TestLocalStore(ArtifactStoreContract):
    max_memory_growth = 6 * MiB

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ArtifactStore]:
        store = load_artifact_store(f"file://{tmp_path}/artifacts", {})
        yield store
        store.close()

    def leftovers(self, store: ArtifactStore) -> list[str]:
        return local_leftovers(store)


def test_local_uri_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from backends.storage.local import LocalArtifactStore

    assert LocalArtifactStore.from_uri(f"file://{tmp_path}/a", {}).root == tmp_path / "a"
    assert LocalArtifactStore.from_uri(f"file://localhost{tmp_path}/b", {}).root == tmp_path / "b"
    assert LocalArtifactStore.from_uri(f"file://{tmp_path}/with%20space", {}).root == (
        tmp_path / "with space"
    )
    monkeypatch.chdir(tmp_path)
    assert LocalArtifactStore.from_uri("file://./rel", {}).root == tmp_path / "rel"
    with pytest.raises(ConfigError):
        LocalArtifactStore.from_uri("file://", {})


def test_local_unwritable_root_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_bytes(b"")
    store = load_artifact_store(f"file://{blocker}/artifacts", {})
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.put("k", io.BytesIO(b"x"))  # type: ignore[arg-type]


# -- s3 (moto server) -----------------------------------------------------------------------------


def _s3_store(bucket: str, endpoint: str, prefix: str = "pre/fix") -> ArtifactStore:
    return load_artifact_store(
        f"s3://{bucket}/{prefix}",
        {"endpoint_url": endpoint, "region": "us-east-1", "addressing_style": "path"},
    )


class TestS3Store(ArtifactStoreContract):
    # moto keeps objects in this process's memory, so tracemalloc would count the server.
    max_memory_growth = None

    @pytest.fixture
    def store(self, s3_bucket: str, moto_server: str) -> Iterator[ArtifactStore]:
        store = _s3_store(s3_bucket, moto_server)
        yield store
        store.close()

    def leftovers(self, store: ArtifactStore) -> list[str]:
        return s3_leftovers(store)


def test_s3_objects_live_under_the_prefix(s3_bucket: str, moto_server: str) -> None:
    store = _s3_store(s3_bucket, moto_server, prefix="team/a")
    store.put("job/terraform.plan.out", io.BytesIO(b"plan"))  # type: ignore[arg-type]
    listed = store._client.list_objects_v2(Bucket=s3_bucket)["Contents"]  # type: ignore[attr-defined]
    assert [o["Key"] for o in listed] == ["team/a/job/terraform.plan.out"]


def test_s3_upload_holds_one_part_at_a_time(s3_bucket: str, moto_server: str) -> None:
    """Sequential parts of PART_SIZE (S3's 5 MiB minimum), one request at a time."""
    from backends.storage.s3 import PART_SIZE

    assert 5 * MiB == PART_SIZE
    store = _s3_store(s3_bucket, moto_server)
    client = store._client  # type: ignore[attr-defined]
    bodies: list[int] = []
    in_flight = [0]
    original = client.upload_part

    def upload_part(**kwargs: object) -> object:
        in_flight[0] += 1
        assert in_flight[0] == 1, "parts must be sent one at a time"
        bodies.append(len(kwargs["Body"]))  # type: ignore[arg-type]
        try:
            return original(**kwargs)
        finally:
            in_flight[0] -= 1

    client.upload_part = upload_part
    stored = store.put("k", PatternStream(18 * MiB, max_read=100_000))  # type: ignore[arg-type]
    assert bodies == [PART_SIZE, PART_SIZE, PART_SIZE, 3 * MiB]
    head = client.head_object(Bucket=s3_bucket, Key="pre/fix/k")
    assert head["ContentLength"] == stored.size == 18 * MiB
    assert head["ETag"].strip('"').endswith("-4")  # a completed multipart upload of 4 parts
    assert hashlib.sha256(store.get_bytes("k")).hexdigest() == stored.sha256


@pytest.mark.parametrize("size", [0, 1, 5 * MiB - 1])
def test_s3_below_one_part_is_a_single_put_object(
    s3_bucket: str, moto_server: str, size: int
) -> None:
    store = _s3_store(s3_bucket, moto_server)
    client = store._client  # type: ignore[attr-defined]
    client.create_multipart_upload = None  # would raise TypeError if called
    store.put("k", PatternStream(size))  # type: ignore[arg-type]
    assert store.open("k").size == size


def test_s3_exactly_one_part_completes(s3_bucket: str, moto_server: str) -> None:
    store = _s3_store(s3_bucket, moto_server)
    stored = store.put("k", PatternStream(5 * MiB))  # type: ignore[arg-type]
    head = store._client.head_object(Bucket=s3_bucket, Key="pre/fix/k")  # type: ignore[attr-defined]
    assert head["ContentLength"] == stored.size == 5 * MiB
    assert head["ETag"].strip('"').endswith("-1")


def test_s3_failed_part_aborts_and_keeps_previous(
    s3_bucket: str, moto_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An S3 error mid-upload: StoreUnavailable, the multipart upload aborted, old object kept;
    an abort that fails too is logged (without the upload id or credentials), not raised."""
    from botocore.exceptions import EndpointConnectionError

    store = _s3_store(s3_bucket, moto_server)
    store.put("k", io.BytesIO(b"previous"))  # type: ignore[arg-type]
    client = store._client  # type: ignore[attr-defined]
    original = client.upload_part
    calls = [0]

    def flaky(**kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == 2:
            raise EndpointConnectionError(endpoint_url=moto_server)
        return original(**kwargs)

    client.upload_part = flaky
    with pytest.raises(StoreUnavailable, match="EndpointConnectionError"):
        store.put("k", PatternStream(12 * MiB))  # type: ignore[arg-type]
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert store.get_bytes("k") == b"previous"

    calls[0] = 0
    client.abort_multipart_upload = lambda **kw: (_ for _ in ()).throw(
        EndpointConnectionError(endpoint_url=moto_server)
    )
    with pytest.raises(StoreUnavailable):
        store.put("k", PatternStream(12 * MiB))  # type: ignore[arg-type]
    assert "Could not abort" in caplog.text and "testing" not in caplog.text
    assert store.get_bytes("k") == b"previous"


def test_s3_client_memory_is_bounded(moto_server_process: str, aws_test_env: None) -> None:
    """50 MiB through the store with moto in another process: growth ≈ one 5 MiB part."""
    import tracemalloc

    import boto3

    bucket = f"mem-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server_process, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    store = _s3_store(bucket, moto_server_process)
    store.put("warm-up", PatternStream(6 * MiB))  # type: ignore[arg-type]
    store.get_bytes("warm-up")
    size = 50 * MiB
    tracemalloc.start()
    try:
        # (PatternStream's default 256 KiB reads: its own random generation stays small)
        stored = store.put("big", PatternStream(size))  # type: ignore[arg-type]
        upload_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        total = sum(len(chunk) for chunk in store.open("big"))
        download_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        store.close()
    assert stored.size == total == size
    assert upload_peak < 7 * MiB, upload_peak  # one 5 MiB part + one read + botocore's own
    assert download_peak < 4 * MiB, download_peak


def test_s3_missing_bucket_is_unavailable_not_missing(
    moto_server: str, aws_test_env: None
) -> None:
    store = _s3_store("no-such-bucket-" + uuid.uuid4().hex[:8], moto_server)
    with pytest.raises(StoreUnavailable, match="NoSuchBucket"):
        store.put("k", io.BytesIO(b"x"))  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        store.open("k")
    with pytest.raises(StoreUnavailable):
        store.ping()


def test_s3_unreachable_endpoint_is_unavailable(aws_test_env: None) -> None:
    store = _s3_store("bucket", f"http://127.0.0.1:{_free_port()}")
    store._client.meta.config.retries = {"max_attempts": 1}  # type: ignore[attr-defined]
    for call in (
        lambda: store.put("k", io.BytesIO(b"x")),  # type: ignore[arg-type]
        lambda: store.open("k"),
        lambda: store.exists("k"),
        lambda: store.delete("k"),
        store.ping,
    ):
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert "testing" not in str(info.value)  # no credentials in messages


def test_s3_rejects_bad_options() -> None:
    with pytest.raises(ConfigError, match="addressing_style"):
        load_artifact_store("s3://b/p", {"addressing_style": "sideways"})
    with pytest.raises(ConfigError, match="accepted: addressing_style, endpoint_url, region"):
        load_artifact_store("s3://b/p", {"endpoint": "http://x"})
    with pytest.raises(ConfigError):
        load_artifact_store("s3:///no-bucket", {})


# -- supabase (Storage-compatible server) ---------------------------------------------------------


def _supabase_store(server: StorageServer, **options: str) -> ArtifactStore:
    prefix = f"run-{uuid.uuid4().hex[:12]}"
    return load_artifact_store(
        f"supabase://artifacts/{prefix}",
        {"url": server.url, "service_role_key": server.service_key, **options},
    )


class TestSupabaseStore(ArtifactStoreContract):
    # The server runs in this process and would be counted; see test_supabase_client_memory.
    max_memory_growth = None

    @pytest.fixture
    def store(self, supabase_storage: StorageServer) -> Iterator[ArtifactStore]:
        store = _supabase_store(supabase_storage)
        self._server = supabase_storage
        yield store
        store.close()

    def leftovers(self, store: ArtifactStore) -> list[str]:
        return supabase_leftovers(self._server, store)


class TestSupabaseStoreSmallParts(TestSupabaseStore):
    """Same contract with 64 KiB parts: many parts per artifact, several per read chunk."""

    large_size = 3 * MiB
    max_memory_growth = None

    @pytest.fixture
    def store(self, supabase_storage: StorageServer) -> Iterator[ArtifactStore]:
        store = _supabase_store(supabase_storage, part_size=str(64 * 1024))
        self._server = supabase_storage
        yield store
        store.close()


def test_supabase_client_memory_is_bounded(
    storage_server_process: tuple[str, str], local_no_proxy: None
) -> None:
    """50 MiB through the client with the server in another process: growth ≈ one part."""
    import tracemalloc

    url, key = storage_server_process
    store = load_artifact_store(
        f"supabase://artifacts/mem-{uuid.uuid4().hex[:8]}", {"url": url, "service_role_key": key}
    )
    store.put("warm-up", PatternStream(5 * MiB))  # type: ignore[arg-type]
    store.get_bytes("warm-up")
    size = 50 * MiB
    tracemalloc.start()
    try:
        source = PatternStream(size)
        stored = store.put("big", source)  # type: ignore[arg-type]
        upload_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        total = sum(len(chunk) for chunk in store.open("big"))
        download_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        store.close()
    assert stored.size == total == size
    assert upload_peak < 4 * MiB, upload_peak  # parts are spooled to disk and streamed
    assert download_peak < 16 * MiB, download_peak  # one 4 MiB part (+ httpx's copy) at a time


def test_supabase_every_call_carries_at_most_one_part(supabase_storage: StorageServer) -> None:
    store = _supabase_store(supabase_storage, part_size=str(MiB))
    supabase_storage.largest_upload = 0
    stored = store.put("big", PatternStream(10 * MiB + 5))  # type: ignore[arg-type]
    assert supabase_storage.largest_upload == MiB
    names = [n for n in supabase_storage.names() if n.startswith(store.prefix + "/")]  # type: ignore[attr-defined]
    assert len(names) == 1 + 11  # the manifest and 11 parts
    assert store.open("big").size == stored.size


def test_supabase_replace_removes_old_parts(supabase_storage: StorageServer) -> None:
    store = _supabase_store(supabase_storage, part_size=str(64 * 1024))
    store.put("k", PatternStream(300_000, seed=1))  # type: ignore[arg-type]
    store.put("k", PatternStream(200_000, seed=2))  # type: ignore[arg-type]
    names = [n for n in supabase_storage.names() if n.startswith(store.prefix + "/")]  # type: ignore[attr-defined]
    assert len(names) == 1 + 4  # manifest + ceil(200000 / 65536) parts of the new generation
    store.delete("k")
    assert [n for n in supabase_storage.names() if n.startswith(store.prefix + "/")] == []  # type: ignore[attr-defined]


def test_supabase_missing_bucket_is_unavailable_not_missing(
    supabase_storage: StorageServer,
) -> None:
    store = load_artifact_store(
        "supabase://no-such-bucket/x",
        {"url": supabase_storage.url, "service_role_key": supabase_storage.service_key},
    )
    for call in (lambda: store.open("k"), lambda: store.exists("k"), store.ping):
        with pytest.raises(StoreUnavailable, match="Bucket not found"):
            call()
    with pytest.raises(StoreUnavailable):
        store.put("k", io.BytesIO(b"x"))  # type: ignore[arg-type]


def test_supabase_wrong_key_is_unavailable_and_never_echoed(
    supabase_storage: StorageServer,
) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    store = load_artifact_store(
        "supabase://artifacts/x", {"url": supabase_storage.url, "service_role_key": wrong}
    )
    with pytest.raises(StoreUnavailable) as info:
        store.open("k")
    assert "403" in str(info.value)
    assert wrong not in str(info.value) and wrong not in repr(store)


def test_supabase_server_errors_are_unavailable(supabase_storage: StorageServer) -> None:
    store = _supabase_store(supabase_storage)
    store.put("k", io.BytesIO(b"x"))  # type: ignore[arg-type]
    supabase_storage.fail_with = (503, {"message": "upstream down"})
    for call in (
        lambda: store.put("k", io.BytesIO(b"y")),  # type: ignore[arg-type]
        lambda: store.open("k"),
        lambda: store.exists("k"),
        lambda: store.delete("k"),
    ):
        with pytest.raises(StoreUnavailable):
            call()
    supabase_storage.fail_with = None
    assert store.get_bytes("k") == b"x"


def test_supabase_unreachable_is_unavailable(local_no_proxy: None) -> None:
    store = load_artifact_store(
        "supabase://artifacts/x",
        {"url": f"http://127.0.0.1:{_free_port()}", "service_role_key": "k", "timeout": "2"},
    )
    for call in (lambda: store.open("k"), lambda: store.exists("k"), store.ping):
        with pytest.raises(StoreUnavailable):
            call()


def test_supabase_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="service_role_key"):
        load_artifact_store("supabase://artifacts/x", {"url": "http://127.0.0.1:1"})
    with pytest.raises(ConfigError, match="part_size"):
        load_artifact_store(
            "supabase://artifacts/x",
            {"url": "http://127.0.0.1:1", "service_role_key": "k", "part_size": "10"},
        )
    with pytest.raises(ConfigError, match="accepted: part_size, service_role_key, timeout, url"):
        load_artifact_store("supabase://artifacts/x", {"key": "k"})


def test_supabase_corrupt_part_is_detected(supabase_storage: StorageServer) -> None:
    store = _supabase_store(supabase_storage, part_size=str(64 * 1024))
    store.put("k", PatternStream(100_000))  # type: ignore[arg-type]
    parts_dir = store.prefix + "/.vintner-parts/k/"  # type: ignore[attr-defined]
    part = next(n for n in supabase_storage.names() if n.startswith(parts_dir))
    store._files.upload(part, b"tampered", {"upsert": "true"})  # type: ignore[attr-defined]
    with pytest.raises(StoreUnavailable, match="corrupt"):
        store.get_bytes("k")


# -- in-memory fake -------------------------------------------------------------------------------


class TestInMemoryFake(ArtifactStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryArtifactStore:
        return InMemoryArtifactStore()


def test_fake_can_play_an_unavailable_store() -> None:
    store = InMemoryArtifactStore()
    store.available = False
    with pytest.raises(StoreUnavailable):
        store.put("k", io.BytesIO(b"x"))  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        store.ping()
    store.available = True
    with pytest.raises(ArtifactNotFound):
        store.open("k")


# -- the example plugin, found through its entry point ------------------------------------------


class TestExamplePluginStore(ArtifactStoreContract):
    @pytest.fixture
    def store(self, memstore_plugin: str) -> Iterator[ArtifactStore]:
        namespace = f"contract-{uuid.uuid4().hex}"
        store = load_artifact_store(f"{memstore_plugin}://{namespace}", {"chunk_size": "65536"})
        assert type(store).__module__ == "vintner_memstore.store"
        yield store
        type(store).forget(namespace)  # type: ignore[attr-defined]

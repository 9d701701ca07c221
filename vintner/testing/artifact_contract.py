"""The artifact-store contract suite, for the built-in stores and for plugins.

Usage (pytest)::

    from vintner.testing.artifact_contract import ArtifactStoreContract

    class TestMyStore(ArtifactStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            store = MyStore.from_uri("my://...", {})
            yield store
            store.close()

Every test receives a fresh, empty ``store`` from the subclass's fixture (use a fresh prefix or
folder per test if the backend is shared). Class attributes tune the suite:

``large_size``
    Size of the streaming round trip (default 20 MiB).
``max_memory_growth``
    If set, the large round trip must not grow Python's traced memory by more than this many
    bytes (measured with :mod:`tracemalloc`; leave ``None`` when the server under test runs
    in-process and keeps objects in memory, as moto does).
``leftovers(store)``
    Override to list backend debris (temp files, open multipart uploads, orphan parts) that
    must be empty after a rejected or interrupted upload.
"""

from __future__ import annotations

import hashlib
import io
import random
import tracemalloc
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

import pytest

from vintner.errors import ArtifactNotFound, InvalidKey, TooLarge
from vintner.ports.artifacts import ArtifactReader, ArtifactStore

MiB = 1024 * 1024

#: Keys that could escape a namespace; all must be refused with InvalidKey.
BAD_KEYS = [
    "",
    "../x",
    "a/../b",
    "a/./b",
    "..",
    "/abs",
    "/etc/passwd",
    "a\\b",
    "..\\x",
    "a\x00b",
    ".hidden",
    "a/.hidden",
    "a//b",
    "a/",
    "a/b/",
    "x" * 1025,
]

#: Keys the API really uses; all must round-trip.
GOOD_KEYS = [
    "k",
    "3f2a9c1e-0000-4000-8000-000000000001/terraform.plan.out",
    "vines/42/terraform.tfstate",
    "a-b_c.d/E.F",
]


class SourceBroken(Exception):
    """Raised by :class:`PatternStream` to play a client that disconnects mid-upload."""


class PatternStream(io.RawIOBase):
    """A lazily generated, deterministic byte stream (never held in memory as a whole).

    ``read(n)`` returns at most ``max_read`` bytes — short reads, like a network stream — so
    backends that assume ``read(n)`` fills ``n`` are caught. With ``fail_after`` it raises
    :class:`SourceBroken` once that many bytes were delivered.
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int = 1,
        max_read: int = 256 * 1024,
        fail_after: int | None = None,
    ) -> None:
        self.size = size
        self.position = 0
        self.max_read = max_read
        self.fail_after = fail_after
        self.largest_read_request = 0
        self._rng = random.Random(seed)
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.max_read
        self.largest_read_request = max(self.largest_read_request, n)
        if self.fail_after is not None and self.position >= self.fail_after:
            raise SourceBroken("source stream broke")
        n = min(n, self.max_read, self.size - self.position)
        if self.fail_after is not None:
            n = min(n, self.fail_after - self.position)
        if n <= 0:
            return b""
        data = self._rng.randbytes(n)
        self.position += n
        self._hash.update(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        """SHA-256 of what was delivered so far (of everything after EOF)."""
        return self._hash.hexdigest()


class ExplodingStream(io.RawIOBase):
    """A stream that must never be read (for checks that run before any I/O)."""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        raise AssertionError("the stream was read before the key was validated")


def pattern_bytes(size: int, seed: int = 1) -> bytes:
    """The bytes PatternStream(size, seed) produces (for small sizes)."""
    return random.Random(seed).randbytes(size) if size else b""


def hash_reader(reader: ArtifactReader, max_chunk: int) -> tuple[int, str, int]:
    """Consume ``reader``: (total size, sha256, number of chunks); asserts chunk bounds."""
    digest = hashlib.sha256()
    total = chunks = 0
    try:
        for chunk in reader:
            assert isinstance(chunk, bytes | bytearray | memoryview)
            assert 0 < len(chunk) <= max_chunk, f"chunk of {len(chunk)} bytes"
            digest.update(chunk)
            total += len(chunk)
            chunks += 1
    finally:
        reader.close()
    return total, digest.hexdigest(), chunks


class ArtifactStoreContract:
    """Behaviour every :class:`ArtifactStore` must have. Subclasses provide ``store``."""

    large_size: ClassVar[int] = 20 * MiB
    max_memory_growth: ClassVar[int | None] = None
    #: Largest chunk a download may yield.
    max_chunk: ClassVar[int] = 8 * MiB

    @pytest.fixture
    def store(self) -> Iterator[ArtifactStore]:  # pragma: no cover - the subclass overrides
        raise NotImplementedError("subclass ArtifactStoreContract and provide a `store` fixture")

    def leftovers(self, store: ArtifactStore) -> list[str]:
        """Backend debris after a failed upload; override per backend."""
        return []

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def put_bytes(store: ArtifactStore, key: str, data: bytes, **kwargs: object):
        return store.put(key, io.BytesIO(data), **kwargs)  # type: ignore[arg-type]

    def assert_intact(self, store: ArtifactStore, key: str, data: bytes | None) -> None:
        if data is None:
            assert not store.exists(key)
            with pytest.raises(ArtifactNotFound):
                store.open(key)
        else:
            assert store.exists(key)
            assert store.get_bytes(key) == data
        assert self.leftovers(store) == []

    # -- round trips ------------------------------------------------------------------------------

    def test_put_returns_key_size_and_sha256(self, store: ArtifactStore) -> None:
        data = b"terraform plan bytes\x00\xff" * 100
        stored = self.put_bytes(store, "job/terraform.plan.out", data)
        assert stored.key == "job/terraform.plan.out"
        assert stored.size == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()

    @pytest.mark.parametrize("key", GOOD_KEYS)
    def test_round_trip(self, store: ArtifactStore, key: str) -> None:
        data = pattern_bytes(70_000, seed=len(key))
        self.put_bytes(store, key, data)
        reader = store.open(key)
        assert reader.size == len(data)
        assert reader.read_all() == data

    def test_empty_object(self, store: ArtifactStore) -> None:
        stored = self.put_bytes(store, "empty", b"")
        assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
        assert store.exists("empty")
        reader = store.open("empty")
        assert reader.size == 0
        assert reader.read_all() == b""

    def test_keys_are_independent(self, store: ArtifactStore) -> None:
        self.put_bytes(store, "a/one", b"1")
        self.put_bytes(store, "a/one-two", b"12")
        self.put_bytes(store, "b/one", b"b1")
        assert store.get_bytes("a/one") == b"1"
        assert store.get_bytes("a/one-two") == b"12"
        store.delete("a/one")
        assert store.get_bytes("a/one-two") == b"12"
        assert store.get_bytes("b/one") == b"b1"

    def test_replace(self, store: ArtifactStore) -> None:
        self.put_bytes(store, "k", b"old" * 1000)
        stored = self.put_bytes(store, "k", b"new")
        assert stored.size == 3
        assert store.get_bytes("k") == b"new"
        assert store.open("k").size == 3

    # -- missing keys, delete, exists -------------------------------------------------------------

    def test_missing_key_raises_artifact_not_found(self, store: ArtifactStore) -> None:
        with pytest.raises(ArtifactNotFound):
            store.open("missing/key")
        with pytest.raises(ArtifactNotFound):
            store.get_bytes("missing")

    def test_exists(self, store: ArtifactStore) -> None:
        assert store.exists("k") is False
        self.put_bytes(store, "k", b"x")
        assert store.exists("k") is True
        assert store.exists("k/deeper") is False

    def test_delete_is_idempotent(self, store: ArtifactStore) -> None:
        store.delete("never-there")
        self.put_bytes(store, "dir/k", b"x")
        store.delete("dir/k")
        assert store.exists("dir/k") is False
        with pytest.raises(ArtifactNotFound):
            store.open("dir/k")
        store.delete("dir/k")
        # The key is usable again afterwards.
        self.put_bytes(store, "dir/k", b"again")
        assert store.get_bytes("dir/k") == b"again"

    # -- key validation -----------------------------------------------------------------------

    @pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
    def test_bad_keys_rejected_before_backend(
        self, store: ArtifactStore, key: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        touched: list[str] = []

        def trap(name: str):
            def hook(*args: object, **kwargs: object) -> None:
                touched.append(name)
                raise AssertionError(f"backend hook {name} called with an invalid key")

            return hook

        for hook in ("_put", "_open", "_delete", "_exists"):
            monkeypatch.setattr(store, hook, trap(hook))
        with pytest.raises(InvalidKey):
            store.put(key, ExplodingStream())  # type: ignore[arg-type]
        with pytest.raises(InvalidKey):
            store.open(key)
        with pytest.raises(InvalidKey):
            store.delete(key)
        with pytest.raises(InvalidKey):
            store.exists(key)
        with pytest.raises(InvalidKey):
            store.get_bytes(key)
        assert touched == []

    # -- limits and interrupted uploads ---------------------------------------------------------

    def test_max_bytes_exact_is_allowed(self, store: ArtifactStore) -> None:
        stored = self.put_bytes(store, "k", b"x" * 100, max_bytes=100)
        assert stored.size == 100

    def test_too_large_stores_nothing(self, store: ArtifactStore) -> None:
        with pytest.raises(TooLarge):
            self.put_bytes(store, "k", b"x" * 101, max_bytes=100)
        self.assert_intact(store, "k", None)

    def test_too_large_keeps_previous(self, store: ArtifactStore) -> None:
        self.put_bytes(store, "k", b"previous")
        with pytest.raises(TooLarge):
            self.put_bytes(store, "k", b"x" * 101, max_bytes=100)
        self.assert_intact(store, "k", b"previous")

    def test_too_large_multipart_sized_keeps_previous(self, store: ArtifactStore) -> None:
        # Large enough for every backend's multipart / multi-part path to have started.
        self.put_bytes(store, "k", b"previous")
        with pytest.raises(TooLarge):
            store.put("k", PatternStream(20 * MiB), max_bytes=17 * MiB)  # type: ignore[arg-type]
        self.assert_intact(store, "k", b"previous")

    def test_broken_source_stores_nothing(self, store: ArtifactStore) -> None:
        with pytest.raises(SourceBroken):
            store.put("k", PatternStream(MiB, fail_after=300_000))  # type: ignore[arg-type]
        self.assert_intact(store, "k", None)

    def test_broken_source_keeps_previous(self, store: ArtifactStore) -> None:
        self.put_bytes(store, "k", b"previous")
        with pytest.raises(SourceBroken):
            store.put("k", PatternStream(MiB, fail_after=300_000))  # type: ignore[arg-type]
        self.assert_intact(store, "k", b"previous")

    def test_broken_source_after_many_mib_keeps_previous(self, store: ArtifactStore) -> None:
        self.put_bytes(store, "k", b"previous")
        with pytest.raises(SourceBroken):
            store.put(
                "k",
                PatternStream(20 * MiB, fail_after=18 * MiB),  # type: ignore[arg-type]
            )
        self.assert_intact(store, "k", b"previous")

    # -- streaming -------------------------------------------------------------------------------

    def test_large_streaming_round_trip(self, store: ArtifactStore) -> None:
        size = self.large_size
        source = PatternStream(size, seed=7)
        tracing = self.max_memory_growth is not None
        if tracing:
            tracemalloc.start()
        try:
            stored = store.put("big/terraform.plan.out", source)  # type: ignore[arg-type]
            upload_peak = tracemalloc.get_traced_memory()[1] if tracing else 0
            if tracing:
                tracemalloc.reset_peak()
            reader = store.open("big/terraform.plan.out")
            assert reader.size == size
            total, digest, chunks = hash_reader(reader, self.max_chunk)
            download_peak = tracemalloc.get_traced_memory()[1] if tracing else 0
        finally:
            if tracing:
                tracemalloc.stop()
        assert stored.size == size
        assert stored.sha256 == source.hexdigest()
        assert (total, digest) == (size, stored.sha256)
        assert chunks > 1, "a large download must arrive in several chunks"
        # The store read in bounded requests, never "everything".
        assert source.largest_read_request <= 16 * MiB
        if self.max_memory_growth is not None:
            assert upload_peak <= self.max_memory_growth, f"upload peak {upload_peak}"
            assert download_peak <= self.max_memory_growth, f"download peak {download_peak}"

    def test_download_is_lazy_and_closable(self, store: ArtifactStore) -> None:
        data = pattern_bytes(3 * MiB, seed=3)
        self.put_bytes(store, "k", data)
        reader = store.open("k")
        assert reader.size == len(data)
        assert iter(reader) is reader.chunks
        assert not isinstance(reader.chunks, list | tuple | bytes)
        first = next(iter(reader))
        assert 0 < len(first) <= self.max_chunk
        assert data.startswith(bytes(first))
        reader.close()  # closing early must release the backend's resources
        # ... and leave the store usable for the same key.
        self.put_bytes(store, "k", b"after")
        assert store.get_bytes("k") == b"after"

    def test_reader_is_a_plain_file_like(self, store: ArtifactStore) -> None:
        # Anything with read(n) works as a source, not only io objects.
        class Minimal:
            def __init__(self) -> None:
                self._buf = io.BytesIO(b"minimal source")

            def read(self, n: int = -1) -> bytes:
                return self._buf.read(n)

        src: BinaryIO = Minimal()  # type: ignore[assignment]
        stored = store.put("k", src)
        assert stored.size == len(b"minimal source")
        assert store.get_bytes("k") == b"minimal source"

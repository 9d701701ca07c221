"""An in-memory :class:`ArtifactStore` for tests (yours and ours).

It passes the same contract suite as the real stores (tests/contract), so code tested against
it behaves the same against disk, S3 or Supabase — except that it keeps objects in memory, so
use it for small artifacts only. ``available = False`` makes every call raise
:class:`StoreUnavailable` (to test a 503 path) — also a put already under way, when it would
commit (a store that goes down mid-upload); ``calls`` records the hook calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import ClassVar

from vintner.errors import ArtifactNotFound, StoreUnavailable
from vintner.ports.artifacts import CHUNK_SIZE, ArtifactReader, ArtifactStore, HashingReader


class InMemoryArtifactStore(ArtifactStore):
    """Objects in a dict, guarded by a lock; a put becomes visible only once complete."""

    scheme: ClassVar[str] = "memory"
    options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.available = True
        self.calls: list[tuple[str, str]] = []

    @classmethod
    def from_uri(cls, uri: str, options: Mapping[str, str]) -> InMemoryArtifactStore:
        return cls()

    def keys(self) -> list[str]:
        """Every stored key, sorted (for assertions)."""
        with self._lock:
            return sorted(self._objects)

    def _check(self, hook: str, key: str) -> None:
        self.calls.append((hook, key))
        if not self.available:
            raise StoreUnavailable("Artifact store is unavailable (test fake)")

    def ping(self) -> None:
        self._check("ping", "")

    def _put(self, key: str, reader: HashingReader) -> None:
        self._check("put", key)
        chunks = list(reader.iter_chunks())  # a reader error leaves _objects untouched
        if not self.available:  # went down while the body was streaming in: nothing stored
            raise StoreUnavailable("Artifact store is unavailable (test fake)")
        with self._lock:
            self._objects[key] = b"".join(chunks)

    def _open(self, key: str) -> ArtifactReader:
        self._check("open", key)
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise ArtifactNotFound(f"Artifact not found: {key}")
        return ArtifactReader(size=len(data), chunks=self._iter(data))

    @staticmethod
    def _iter(data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])

    def _delete(self, key: str) -> None:
        self._check("delete", key)
        with self._lock:
            self._objects.pop(key, None)

    def _exists(self, key: str) -> bool:
        self._check("exists", key)
        with self._lock:
            return key in self._objects

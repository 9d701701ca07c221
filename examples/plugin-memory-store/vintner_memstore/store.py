"""``memstore://<namespace>`` — artifacts kept in process memory, chunk by chunk.

Shows everything a store plugin does: declare ``scheme`` and ``options``, build itself in
``from_uri``, implement the four hooks, translate "missing" into ``ArtifactNotFound``, and
make a put visible only once it completed (so a failed upload leaves the old object).
Key validation and hashing/size limits are done by vintner's base class before and around
the hooks: a plugin never re-checks keys.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import ClassVar
from urllib.parse import urlsplit

from vintner.errors import ArtifactNotFound, ConfigError
from vintner.ports.artifacts import ArtifactReader, ArtifactStore, HashingReader

_NAMESPACES: dict[str, dict[str, tuple[bytes, ...]]] = {}
_LOCK = threading.Lock()


class MemStore(ArtifactStore):
    """Objects as tuples of chunks in a process-wide namespace."""

    scheme: ClassVar[str] = "memstore"
    options: ClassVar[frozenset[str]] = frozenset({"chunk_size"})

    def __init__(self, namespace: str, chunk_size: int = 1024 * 1024) -> None:
        self.namespace = namespace
        self.chunk_size = chunk_size
        with _LOCK:
            self._objects = _NAMESPACES.setdefault(namespace, {})

    @classmethod
    def from_uri(cls, uri: str, options: Mapping[str, str]) -> MemStore:
        parts = urlsplit(uri)
        if parts.scheme != "memstore" or not parts.netloc:
            raise ConfigError("memstore URI must look like memstore://namespace")
        try:
            chunk_size = int(options.get("chunk_size", 1024 * 1024))
        except ValueError as exc:
            raise ConfigError("memstore chunk_size must be an integer") from exc
        if chunk_size <= 0:
            raise ConfigError("memstore chunk_size must be positive")
        return cls(parts.netloc + parts.path, chunk_size)

    @classmethod
    def forget(cls, namespace: str) -> None:
        """Drop a namespace (tests call this between cases)."""
        with _LOCK:
            _NAMESPACES.pop(namespace, None)

    def _put(self, key: str, reader: HashingReader) -> None:
        # Read to EOF first; a TooLarge or a broken stream raises here, before any change.
        chunks = tuple(reader.iter_chunks(self.chunk_size))
        with _LOCK:
            self._objects[key] = chunks

    def _open(self, key: str) -> ArtifactReader:
        with _LOCK:
            chunks = self._objects.get(key)
        if chunks is None:
            raise ArtifactNotFound(f"Artifact not found: {key}")
        return ArtifactReader(size=sum(map(len, chunks)), chunks=self._iter(chunks))

    @staticmethod
    def _iter(chunks: tuple[bytes, ...]) -> Iterator[bytes]:
        yield from chunks

    def _delete(self, key: str) -> None:
        with _LOCK:
            self._objects.pop(key, None)

    def _exists(self, key: str) -> bool:
        with _LOCK:
            return key in self._objects

"""The artifact-store interface (a plugin contract).

A store keeps opaque binary objects under string keys (``<job id>/terraform.plan.out``,
``vines/<vine id>/terraform.tfstate``). Plugin authors subclass :class:`ArtifactStore` and
implement the ``_put`` / ``_open`` / ``_delete`` / ``_exists`` hooks; the public methods of the
base class validate the key *once, here*, before any backend code runs, and wrap uploads in a
size-limiting, hashing reader so every backend records the same SHA-256 and enforces the same
limit.

Streaming contract: ``_put`` must read its ``reader`` in bounded chunks until EOF (never the
whole body into memory) and must leave nothing behind and not replace an existing object when
reading raises (the reader raises :class:`~vintner.errors.TooLarge` past ``max_bytes``).
``_open`` returns an :class:`ArtifactReader` whose chunks are produced lazily.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar

from vintner.errors import InvalidKey, TooLarge

CHUNK_SIZE = 1024 * 1024
MAX_KEY_LENGTH = 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise :class:`InvalidKey`.

    Allowed: ``/``-separated segments of ``[A-Za-z0-9._-]`` that start with a letter or digit
    (so no ``..``, no ``.hidden``, no empty segment, no absolute path, no backslash, no NUL).
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey("Artifact key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"Artifact key longer than {MAX_KEY_LENGTH} characters")
    if "\x00" in key or "\\" in key or key.startswith("/"):
        raise InvalidKey("Artifact key must be a relative path without NUL or backslash")
    for segment in key.split("/"):
        if not _SEGMENT.match(segment):
            raise InvalidKey(f"Invalid artifact key segment: {segment!r}")
    return key


@dataclass(frozen=True)
class StoredArtifact:
    """What a completed upload produced."""

    key: str
    size: int
    sha256: str


@dataclass
class ArtifactReader:
    """A lazily streamed object. Iterate ``chunks`` once; call ``close`` when done early."""

    size: int
    chunks: Iterator[bytes]
    _closers: list = field(default_factory=list, repr=False)

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        for closer in self._closers:
            closer()
        self._closers.clear()

    def read_all(self) -> bytes:
        """Convenience for tests and small objects only."""
        try:
            return b"".join(self.chunks)
        finally:
            self.close()


class HashingReader:
    """A file-like wrapper that hashes and counts what passes through, and enforces a limit.

    Backends read from it exactly as from a file (``read(n)``); after EOF, ``size`` and
    ``hexdigest()`` describe the bytes read.
    """

    def __init__(self, raw: BinaryIO, max_bytes: int | None = None) -> None:
        self._raw = raw
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK_SIZE  # never hand a backend the whole body in one call
        data = self._raw.read(n)
        if not data:
            self.eof = True
            return b""
        self.size += len(data)
        if self._max is not None and self.size > self._max:
            raise TooLarge(f"Artifact exceeds {self._max} bytes")
        self._hash.update(data)
        return data

    def readable(self) -> bool:
        return True

    def iter_chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        while chunk := self.read(size):
            yield chunk

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class ArtifactStore(ABC):
    """Base class of every artifact store. Selected by URI scheme through the registry."""

    #: URI scheme this store answers to (the entry-point name).
    scheme: ClassVar[str] = ""
    #: Options (besides the URI) the store understands; anything else stops start-up.
    options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    @abstractmethod
    def from_uri(cls, uri: str, options: Mapping[str, str]) -> ArtifactStore:
        """Build the store from its URI and the store options given in the configuration."""

    # -- public API: validates once, then calls the backend hooks ---------------------------

    def put(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> StoredArtifact:
        """Stream ``stream`` into ``key``, replacing any existing object atomically."""
        key = validate_key(key)
        reader = HashingReader(stream, max_bytes)
        self._put(key, reader)
        if not reader.eof and reader.read(1):
            # the stored object is truncated: a broken plugin (the contract suite catches it)
            raise RuntimeError(f"{type(self).__name__}._put returned before the end of the stream")
        return StoredArtifact(key=key, size=reader.size, sha256=reader.hexdigest())

    def open(self, key: str) -> ArtifactReader:
        """Open ``key`` for streaming; raises :class:`~vintner.errors.ArtifactNotFound`."""
        return self._open(validate_key(key))

    def get_bytes(self, key: str) -> bytes:
        """Whole object in memory: only for small objects (probes, tests)."""
        return self.open(key).read_all()

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""
        self._delete(validate_key(key))

    def exists(self, key: str) -> bool:
        return self._exists(validate_key(key))

    def ping(self) -> None:
        """Raise :class:`~vintner.errors.StoreUnavailable` if the store cannot be reached."""

    def close(self) -> None:
        """Release clients and connections."""

    # -- backend hooks ------------------------------------------------------------------------

    @abstractmethod
    def _put(self, key: str, reader: HashingReader) -> None: ...

    @abstractmethod
    def _open(self, key: str) -> ArtifactReader: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _exists(self, key: str) -> bool: ...

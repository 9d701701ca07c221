"""``supabase://bucket/prefix`` artifact store through supabase-py (storage3).

Options (the config layer maps ``SUPABASE_URL`` / ``SUPABASE_SERVICE_ROLE_KEY`` onto them):

``url``
    The project URL, ``https://<ref>.supabase.co`` (the client adds ``/storage/v1``).
``service_role_key``
    The service-role key (bypasses RLS). Never logged, never in a message or ``repr``.
``part_size``
    Bytes per stored part, default 4 MiB (min 64 KiB, max 64 MiB). See below.
``timeout``
    Seconds per HTTP request, default 60.

Bounded memory: parts + manifest
--------------------------------
storage3's ``download()`` returns the whole object as one ``bytes``, and its ``upload()`` wants
``bytes`` or a real file. Instead of bypassing the client, each artifact is stored as
fixed-size *parts* plus a small JSON *manifest*, so every client call carries at most one part:

* ``<prefix>/<key>`` — the manifest: ``{"format": "vintner-parts/1", "generation", "size",
  "sha256", "part_size", "parts": [{"size", "sha256"}, ...]}``.
* ``<prefix>/.vintner-parts/<key>/<generation>/<n>`` — part ``n`` of that generation. A
  segment starting with ``.`` is one no valid key can contain, so parts never collide with
  artifacts.

``put`` reads the stream one part at a time and uploads each part under a fresh generation;
if reading fails (``TooLarge``, the client's stream breaks) it deletes that generation's parts
and re-raises, leaving the previous artifact untouched. Then it upserts the manifest — the one
atomic commit point — and finally deletes the previous generation's parts. ``open`` reads the
manifest and then downloads parts lazily, one at a time, checking each part's size and
SHA-256 before yielding a byte of it. ``delete`` removes the manifest first (the artifact is
gone at once), then its parts.

Peak memory per transfer ≈ one part (4 MiB) plus the client's copies of it, whatever the
artifact's size; each part also stays under Storage's recommended 6 MB limit for standard
(non-resumable) uploads and under per-bucket file-size limits.

Trade-offs: objects in the bucket are not plain files (the manifest tells how to join them);
a download that overlaps a replace of the same key can find its parts deleted and fails with
:class:`StoreUnavailable` rather than mixing generations; a process killed between uploading
parts and cleaning up leaves an unreferenced generation folder (harmless; removable by
listing ``.vintner-parts``).

Storage's error format: most errors come back as HTTP 400 with the real status in the JSON
body (``{"statusCode": "404", "error": "not_found", "message": "Object not found"}``). A
missing *bucket* is also ``statusCode 404`` (``"error": "Bucket not found"``), so only the
object-level codes map to :class:`ArtifactNotFound`; everything else is
:class:`StoreUnavailable`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, ClassVar
from urllib.parse import urlsplit

from vintner.errors import ArtifactNotFound, ConfigError, StoreUnavailable, VintnerError
from vintner.ports.artifacts import CHUNK_SIZE, ArtifactReader, ArtifactStore, HashingReader

try:
    import httpx
    from storage3.exceptions import StorageApiError
    from storage3.utils import StorageException
    from supabase import ClientOptions, create_client
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "The supabase artifact store needs supabase-py: pip install 'vintner[supabase]'"
    ) from exc

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 4 * MiB
MIN_PART_SIZE = 64 * 1024
MAX_PART_SIZE = 64 * MiB
MANIFEST_FORMAT = "vintner-parts/1"
PARTS_DIR = ".vintner-parts"
# Object-level "missing" codes. "Bucket not found" is deliberately absent: a missing bucket is
# a misconfiguration (503), not a missing artifact (404).
_OBJECT_NOT_FOUND = frozenset({"not_found", "NoSuchKey"})


class SupabaseArtifactStore(ArtifactStore):
    """Artifacts as manifest + parts in one Supabase Storage bucket."""

    scheme: ClassVar[str] = "supabase"
    options: ClassVar[frozenset[str]] = frozenset(
        {"url", "service_role_key", "part_size", "timeout"}
    )

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        url: str,
        service_role_key: str,
        part_size: int = DEFAULT_PART_SIZE,
        timeout: float = 60.0,
    ) -> None:
        if not url:
            raise ConfigError("The supabase artifact store needs the url option (SUPABASE_URL)")
        if not service_role_key:
            raise ConfigError(
                "The supabase artifact store needs the service_role_key option "
                "(SUPABASE_SERVICE_ROLE_KEY)"
            )
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ConfigError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = url
        self.part_size = part_size
        # Our own httpx client: a real timeout, HTTP/1.1 (no h2 dependency), and closable.
        self._http = httpx.Client(timeout=timeout, follow_redirects=True)
        try:
            client = create_client(url, service_role_key, ClientOptions(httpx_client=self._http))
        except Exception as exc:  # SupabaseException: the message names the field, not the key
            self._http.close()
            raise ConfigError(f"Invalid Supabase settings: {type(exc).__name__}") from exc
        self._files = client.storage.from_(bucket)

    @classmethod
    def from_uri(cls, uri: str, options: Mapping[str, str]) -> SupabaseArtifactStore:
        parts = urlsplit(uri)
        if parts.scheme.lower() != "supabase" or not parts.netloc:
            raise ConfigError("Supabase artifact store URI must look like supabase://bucket/prefix")
        try:
            part_size = int(options.get("part_size") or DEFAULT_PART_SIZE)
            timeout = float(options.get("timeout") or 60)
        except ValueError as exc:
            raise ConfigError("part_size and timeout must be numbers") from exc
        return cls(
            parts.netloc,
            parts.path,
            url=options.get("url", ""),
            service_role_key=options.get("service_role_key", ""),
            part_size=part_size,
            timeout=timeout,
        )

    def __repr__(self) -> str:  # no key here, ever
        return f"SupabaseArtifactStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # -- naming --------------------------------------------------------------------------------

    def _join(self, *segments: str) -> str:
        return "/".join(s for s in (self.prefix, *segments) if s)

    def _manifest_path(self, key: str) -> str:
        return self._join(key)

    def _part_path(self, key: str, generation: str, index: int) -> str:
        return self._join(PARTS_DIR, key, generation, f"{index:06d}")

    # -- error translation ---------------------------------------------------------------------

    @staticmethod
    def _is_missing(exc: Exception) -> bool:
        return (
            isinstance(exc, StorageApiError)
            and str(exc.status) == "404"
            and exc.code in _OBJECT_NOT_FOUND
        )

    def _translate(self, exc: Exception, action: str) -> VintnerError:
        if isinstance(exc, StorageApiError):
            # Storage's own message ("Bucket not found", "new row violates ...") is safe and
            # useful; it never echoes the key.
            return StoreUnavailable(
                f"Supabase Storage {action} failed ({exc.status} {exc.code}: {exc.message})"
            )
        return StoreUnavailable(f"Supabase Storage {action} failed ({type(exc).__name__})")

    _CLIENT_ERRORS = (StorageException, httpx.HTTPError, ValueError)

    # -- client calls (each carries at most one part) ------------------------------------------

    def _upload(
        self, path: str, data: bytes | BinaryIO, *, overwrite: bool, cache: str
    ) -> None:
        try:
            self._files.upload(
                path,
                data,
                {
                    "content-type": "application/octet-stream",
                    "cache-control": cache,
                    "upsert": "true" if overwrite else "false",
                },
            )
        except self._CLIENT_ERRORS as exc:
            raise self._translate(exc, "upload") from exc

    def _download(self, path: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        try:
            return self._files.download(path)
        except self._CLIENT_ERRORS as exc:
            if self._is_missing(exc):
                return None
            raise self._translate(exc, "download") from exc

    def _remove(self, paths: list[str]) -> None:
        if not paths:
            return
        try:
            self._files.remove(paths)  # missing paths are skipped, not errors
        except self._CLIENT_ERRORS as exc:
            raise self._translate(exc, "delete") from exc

    def _remove_quietly(self, paths: list[str]) -> None:
        # Cleanup of parts nobody references any more: failing here must not fail the caller.
        try:
            self._remove(paths)
        except StoreUnavailable as exc:
            log.warning("Could not remove %d unreferenced artifact part(s): %s", len(paths), exc)

    def _manifest(self, key: str) -> dict[str, Any] | None:
        raw = self._download(self._manifest_path(key))
        if raw is None:
            return None
        try:
            manifest = json.loads(raw)
            if manifest.get("format") != MANIFEST_FORMAT:
                raise ValueError(manifest.get("format"))
            return manifest
        except (ValueError, AttributeError) as exc:
            raise StoreUnavailable(f"Object {key!r} is not a vintner artifact manifest") from exc

    def _part_paths(self, key: str, manifest: Mapping[str, Any]) -> list[str]:
        generation = str(manifest["generation"])
        return [self._part_path(key, generation, i) for i in range(len(manifest["parts"]))]

    # -- hooks ---------------------------------------------------------------------------------

    def ping(self) -> None:
        try:
            self._files.list(self.prefix or None, {"limit": 1})
        except self._CLIENT_ERRORS as exc:
            raise self._translate(exc, "list") from exc

    def close(self) -> None:
        self._http.close()

    def _put(self, key: str, reader: HashingReader) -> None:
        generation = uuid.uuid4().hex
        parts: list[dict[str, Any]] = []
        uploaded: list[str] = []
        try:
            while True:
                with tempfile.TemporaryFile() as spool:
                    size, digest = self._spool_part(reader, spool)
                    if size == 0:
                        break
                    path = self._part_path(key, generation, len(parts))
                    # storage3 streams only a BufferedReader (httpx sends it in 64 KiB
                    # pieces); anything else but bytes it takes for a path. A fresh
                    # generation, so "upsert false" would only fail on a uuid collision.
                    with open(spool.fileno(), "rb", closefd=False) as part:
                        part.seek(0)
                        self._upload(path, part, overwrite=False, cache="31536000")
                uploaded.append(path)
                parts.append({"size": size, "sha256": digest})
            previous = self._manifest(key)
            manifest = {
                "format": MANIFEST_FORMAT,
                "generation": generation,
                "size": reader.size,
                "sha256": reader.hexdigest(),
                "part_size": self.part_size,
                "parts": parts,
            }
            body = json.dumps(manifest, separators=(",", ":")).encode()
            # The commit point: Storage replaces the manifest object atomically. "0" keeps any
            # CDN from serving a stale manifest that points at deleted parts.
            self._upload(self._manifest_path(key), body, overwrite=True, cache="0")
        except BaseException:
            self._remove_quietly(uploaded)
            raise
        if previous is not None and previous.get("generation") != generation:
            self._remove_quietly(self._part_paths(key, previous))

    def _spool_part(self, reader: HashingReader, spool: BinaryIO) -> tuple[int, str]:
        """Copy one part (short only at EOF) from ``reader`` to ``spool``: (size, sha256)."""
        digest = hashlib.sha256()
        size = 0
        while size < self.part_size:
            chunk = reader.read(min(CHUNK_SIZE, self.part_size - size))
            if not chunk:
                break
            spool.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        spool.flush()
        return size, digest.hexdigest()

    def _open(self, key: str) -> ArtifactReader:
        manifest = self._manifest(key)
        if manifest is None:
            raise ArtifactNotFound(f"Artifact not found: {key}")
        return ArtifactReader(size=int(manifest["size"]), chunks=self._iter(key, manifest))

    def _iter(self, key: str, manifest: Mapping[str, Any]) -> Iterator[bytes]:
        for path, part in zip(self._part_paths(key, manifest), manifest["parts"], strict=True):
            data = self._download(path)
            if data is None:
                raise StoreUnavailable(f"Artifact {key!r} was replaced or deleted while read")
            if len(data) != part["size"] or hashlib.sha256(data).hexdigest() != part["sha256"]:
                raise StoreUnavailable(f"Artifact {key!r} has a corrupt part")
            view = memoryview(data)
            for start in range(0, len(view), CHUNK_SIZE):
                yield bytes(view[start : start + CHUNK_SIZE])
            del view, data
            # httpx responses sit in a reference cycle (response <-> its bound stream), so
            # each part's body is freed only by the cyclic GC, which counts objects, not
            # bytes: without this, parts pile up and a download holds tens of MiB. The
            # response is young, so collecting the young generations is enough and cheap.
            gc.collect(1)

    def _delete(self, key: str) -> None:
        manifest = self._manifest(key)
        if manifest is None:
            return
        self._remove([self._manifest_path(key)])
        self._remove_quietly(self._part_paths(key, manifest))

    def _exists(self, key: str) -> bool:
        # storage3's exists() reads the object's info and returns False only for Storage's
        # object-level 404; an invalid key or a missing bucket raises.
        try:
            return bool(self._files.exists(self._manifest_path(key)))
        except self._CLIENT_ERRORS as exc:
            raise self._translate(exc, "info") from exc

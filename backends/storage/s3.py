"""``s3://bucket/prefix`` artifact store (boto3), for AWS S3 and S3-compatible servers.

Options (besides the URI; the config layer maps ``VINTNER_S3_*`` onto them):

``endpoint_url``
    An S3-compatible server (MinIO, Supabase's S3 endpoint, moto). Empty → AWS.
``region``
    Region name; S3-compatible servers usually accept any (``us-east-1``).
``addressing_style``
    ``auto`` (default), ``path`` or ``virtual``. Many self-hosted servers only answer
    path-style requests (``http://host/bucket/key``), which also avoids per-bucket DNS names.

Credentials come from boto3's standard chain (``AWS_*`` variables, profile, instance role) and
are never part of the URI or of any message.

Memory bounds. ``upload_fileobj`` is given an explicit :class:`TransferConfig`: 8 MiB parts,
at most 2 part bodies in memory for a non-seekable stream (boto3's default is 10), 2 upload
threads. An artifact below 8 MiB is one ``PutObject`` sent only after the whole body was read;
a larger one is a multipart upload that boto3 aborts when reading fails, so an object appears
(or is replaced) only at ``CompleteMultipartUpload``. Downloads stream the ``GetObject`` body
with ``iter_chunks``.

Checksums. Recent botocore adds CRC32 trailers to every upload by default; several
S3-compatible servers reject them, hence ``request_checksum_calculation`` /
``response_checksum_validation = "when_required"``. The store hashes every upload itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from vintner.errors import ArtifactNotFound, ConfigError, StoreUnavailable, VintnerError
from vintner.ports.artifacts import CHUNK_SIZE, ArtifactReader, ArtifactStore, HashingReader

try:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("The s3 artifact store needs boto3: pip install 'vintner[s3]'") from exc

MiB = 1024 * 1024
PART_SIZE = 8 * MiB
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_ADDRESSING_STYLES = frozenset({"auto", "path", "virtual"})


def transfer_config() -> TransferConfig:
    """The upload settings; memory per upload ≈ ``max_in_memory_upload_chunks × PART_SIZE``."""
    config = TransferConfig(
        multipart_threshold=PART_SIZE,
        multipart_chunksize=PART_SIZE,
        max_concurrency=2,
        max_io_queue=2,
        use_threads=True,
        # The CRT client (when installed) ignores the limits below; force the classic one.
        preferred_transfer_client="classic",
    )
    # Not a TransferConfig constructor argument, but the attribute s3transfer's manager reads
    # to cap buffered part bodies of non-seekable streams (default 10 × 8 MiB = 80 MiB).
    config.max_in_memory_upload_chunks = 2
    return config


class _FullReads:
    """Make ``read(n)`` return exactly ``n`` bytes unless at EOF.

    s3transfer decides "small object" when its first read returns less than the threshold, and
    cuts one part per ``read(chunksize)`` call; a request stream may return short reads, which
    would truncate a PutObject or produce parts below S3's 5 MiB minimum.
    """

    def __init__(self, reader: HashingReader) -> None:
        self._reader = reader

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            # Only called by s3transfer after a short first read, i.e. at EOF; still correct
            # (if unbounded) otherwise.
            return b"".join(iter(lambda: self._reader.read(CHUNK_SIZE), b""))
        parts: list[bytes] = []
        missing = n
        while missing > 0:
            chunk = self._reader.read(missing)
            if not chunk:
                break
            parts.append(chunk)
            missing -= len(chunk)
        return b"".join(parts)

    def readable(self) -> bool:
        return True


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ArtifactStore(ArtifactStore):
    """Artifacts as objects ``<prefix>/<key>`` in one bucket."""

    scheme: ClassVar[str] = "s3"
    options: ClassVar[frozenset[str]] = frozenset({"endpoint_url", "region", "addressing_style"})

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str = "auto",
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        if client is None:
            config = Config(
                s3={"addressing_style": addressing_style},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url, region_name=region or None, config=config
            )
        self._client = client
        self._transfer = transfer_config()

    @classmethod
    def from_uri(cls, uri: str, options: Mapping[str, str]) -> S3ArtifactStore:
        parts = urlsplit(uri)
        if parts.scheme.lower() != "s3" or not parts.netloc:
            raise ConfigError("S3 artifact store URI must look like s3://bucket/prefix")
        if parts.query or parts.fragment:
            raise ConfigError("S3 artifact store URI takes no query or fragment; use options")
        style = (options.get("addressing_style") or "auto").lower()
        if style not in _ADDRESSING_STYLES:
            raise ConfigError(
                f"addressing_style must be one of {', '.join(sorted(_ADDRESSING_STYLES))}"
            )
        return cls(
            parts.netloc,
            parts.path,
            endpoint_url=options.get("endpoint_url"),
            region=options.get("region"),
            addressing_style=style,
        )

    def __repr__(self) -> str:
        return f"S3ArtifactStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- error translation: nothing above this store sees a botocore exception ---------------

    def _translate(self, exc: Exception, action: str, key: str | None = None) -> VintnerError:
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if key is not None and code in _NOT_FOUND_CODES:
                return ArtifactNotFound(f"Artifact not found: {key}")
            # ClientError messages carry no credentials; the code is enough to act on.
            return StoreUnavailable(f"S3 {action} failed ({code or 'unknown error'})")
        # EndpointConnectionError, ReadTimeout, NoCredentialsError, ...: class name only.
        return StoreUnavailable(f"S3 {action} failed ({type(exc).__name__})")

    def ping(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "head_bucket") from exc

    def close(self) -> None:
        self._client.close()

    def _put(self, key: str, reader: HashingReader) -> None:
        try:
            self._client.upload_fileobj(
                _FullReads(reader),
                self.bucket,
                self._object_key(key),
                ExtraArgs={"ContentType": "application/octet-stream"},
                Config=self._transfer,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "upload") from exc
        # Anything else (TooLarge from the reader, the client's stream failing) propagates
        # as-is: s3transfer has already aborted the multipart upload, if it had started one.

    def _open(self, key: str) -> ArtifactReader:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "download", key) from exc
        body = response["Body"]
        return ArtifactReader(
            size=int(response["ContentLength"]),
            chunks=self._iter(body),
            _closers=[body.close],
        )

    def _iter(self, body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK_SIZE)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "download") from exc
        finally:
            body.close()

    def _delete(self, key: str) -> None:
        # DeleteObject succeeds for a missing key, which is the contract's idempotence.
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._object_key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "delete") from exc

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return False
            raise self._translate(exc, "head_object") from exc
        except BotoCoreError as exc:
            raise self._translate(exc, "head_object") from exc
        return True

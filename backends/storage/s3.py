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

Memory bounds: one part at a time. Uploads do not go through boto3's managed transfer
(``upload_fileobj``): for a non-seekable stream s3transfer buffers several parts per upload
(``max_in_memory_upload_chunks``, default 10 × 8 MiB) plus copies of them while it joins short
reads and hands parts to its threads — measured at ~40 MiB of server RSS growth for a 50 MiB
plan even when tuned down to 2 chunks and 2 threads. Instead ``_put`` runs the multipart
protocol itself, sequentially, with a single reused ``bytearray`` of :data:`PART_SIZE` (5 MiB,
S3's minimum part size):

* fill the buffer from the reader (1 MiB reads copied into it; the reader's size limit and
  hash apply as it goes);
* if the stream ended before the buffer was full, the artifact is one ``PutObject`` of the
  buffer, sent only after the whole body was read;
* otherwise ``CreateMultipartUpload``, then ``UploadPart`` of the buffer, refill, repeat, and
  ``CompleteMultipartUpload`` after EOF — the one step that makes the object appear or replace
  the previous one. Any exception on the way (``TooLarge`` or a broken client stream from the
  reader, an S3 error, even ``KeyboardInterrupt``) aborts the multipart upload before it
  propagates, so nothing is stored and the previous object stays. If the abort itself fails
  (the store is unreachable), an incomplete upload is left on the bucket, invisible to reads;
  a lifecycle rule ``AbortIncompleteMultipartUpload`` removes those (see docs/plugins.md).

Peak memory per upload ≈ one part (5 MiB) plus one 1 MiB read, whatever the artifact's size.
The cost is throughput: reading from the client and sending to S3 alternate instead of
overlapping (fine for plans of at most 50 MiB). Downloads stream the ``GetObject`` body with
``iter_chunks``.

Checksums. Recent botocore adds CRC32 trailers to every upload by default; several
S3-compatible servers reject them, hence ``request_checksum_calculation`` /
``response_checksum_validation = "when_required"``. The store hashes every upload itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from vintner.errors import ArtifactNotFound, ConfigError, StoreUnavailable, VintnerError
from vintner.ports.artifacts import CHUNK_SIZE, ArtifactReader, ArtifactStore, HashingReader

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("The s3 artifact store needs boto3: pip install 'vintner[s3]'") from exc

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Bytes per multipart part and the largest single-request upload: S3's minimum part size
#: (every part but the last must be at least 5 MiB), so the buffer is as small as S3 allows.
PART_SIZE = 5 * MiB
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_ADDRESSING_STYLES = frozenset({"auto", "path", "virtual"})
CONTENT_TYPE = "application/octet-stream"
T = TypeVar("T")


def fill_part(reader: HashingReader, buffer: bytearray) -> int:
    """Read from ``reader`` into ``buffer`` until it is full or the stream ends; the count.

    Short reads (a network stream) are joined in place, so the buffer is the only copy of the
    part; the size limit and hash of the reader apply to every byte read.
    """
    filled = 0
    with memoryview(buffer) as view:
        while filled < len(buffer):
            chunk = reader.read(min(CHUNK_SIZE, len(buffer) - filled))
            if not chunk:
                break
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    return filled


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

    def _call(self, action: str, method: Callable[..., T], **kwargs: Any) -> T:
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, action) from exc

    def _put(self, key: str, reader: HashingReader) -> None:
        bucket, object_key = self.bucket, self._object_key(key)
        buffer = bytearray(PART_SIZE)  # the one part held in memory, reused for every part
        filled = fill_part(reader, buffer)
        if filled < PART_SIZE:
            # The whole artifact fits one part: a single PutObject, after EOF was reached.
            del buffer[filled:]
            self._call("upload", self._client.put_object, Bucket=bucket, Key=object_key,
                       Body=buffer, ContentType=CONTENT_TYPE)
            return
        upload_id = self._call(
            "upload", self._client.create_multipart_upload,
            Bucket=bucket, Key=object_key, ContentType=CONTENT_TYPE,
        )["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            while filled:
                number = len(parts) + 1
                response = self._call(
                    "upload", self._client.upload_part, Bucket=bucket, Key=object_key,
                    UploadId=upload_id, PartNumber=number, Body=buffer,
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
                filled = fill_part(reader, buffer)
                if filled < PART_SIZE:
                    del buffer[filled:]  # the last part (or nothing left: the loop ends)
            # The commit point: the object appears (or replaces the previous one) only here.
            self._call(
                "upload", self._client.complete_multipart_upload, Bucket=bucket,
                Key=object_key, UploadId=upload_id, MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # TooLarge or a broken stream from the reader, an S3 error, an interrupt: the
            # parts uploaded so far are discarded and the previous object is untouched.
            self._abort(object_key, upload_id)
            raise

    def _abort(self, object_key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=object_key, UploadId=upload_id
            )
        except (ClientError, BotoCoreError) as exc:
            # Invisible to reads; a bucket lifecycle rule (AbortIncompleteMultipartUpload)
            # removes it. The upload id is not a secret, but the class name is enough.
            log.warning("Could not abort an incomplete multipart upload of an artifact (%s); "
                        "it stays in the bucket until a lifecycle rule removes it",
                        type(exc).__name__)

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

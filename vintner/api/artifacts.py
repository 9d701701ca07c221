"""Plan artifacts: streamed upload (raw bytes or multipart ``file``) and streamed download.

The body never sits in memory whole: it flows through the store's size-limiting, hashing reader
into the artifact store; the download yields the store's chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from flask import Response, request
from flask.typing import ResponseReturnValue

from vintner.api.auth import current_worker, worker_or_operator, worker_required
from vintner.api.blueprint import Blueprint
from vintner.api.ids import parse_id
from vintner.domain import artifacts
from vintner.domain.model import utcnow
from vintner.errors import InvalidInput, TooLarge, VintnerError
from vintner.services import services

blp = Blueprint("artifacts", __name__, url_prefix="/api/jobs", description="Plan artifacts")

MAX_PLAN_BYTES = 52_428_800
TOO_LARGE = "File too large (max 50MB)"
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file
DRAIN_LIMIT = 2 * MAX_PLAN_BYTES  # read and drop a refused body up to this size, then reply


class _PrefixedStream:
    """A stream that first returns ``head`` and then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head, self._raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = (self._head, b"") if n < 0 or n >= len(self._head) else \
                (self._head[:n], self._head[n:])
            return out
        return self._raw.read(n)


def _drain(stream: BinaryIO, limit: int) -> None:
    """Consume a refused body so the client sees our 413 rather than a reset connection."""
    remaining = limit
    while remaining > 0 and (chunk := stream.read(min(remaining, 1024 * 1024))):
        remaining -= len(chunk)


def _upload_source() -> BinaryIO:
    """The artifact bytes: the multipart part named ``file``, or the raw body."""
    length = request.content_length
    multipart = request.mimetype == "multipart/form-data"
    limit = MAX_PLAN_BYTES + (MULTIPART_SLACK if multipart else 0)
    if length is not None and length > limit:
        if length <= DRAIN_LIMIT:
            _drain(request.stream, length)
        raise TooLarge(TOO_LARGE)
    if length == 0:
        raise InvalidInput("Empty body")
    if multipart:
        # werkzeug spools file parts larger than 500 KiB to a temporary file, not memory
        part = request.files.get("file")
        if part is None:
            raise InvalidInput("Multipart body needs one file part named 'file'")
        return part.stream
    return request.stream


@blp.route("/<job_id>/plan-artifact", methods=["POST"])
@worker_required
@blp.doc(security=[{"worker_id": [], "worker_token": []}])
def upload_plan_artifact(job_id: str) -> ResponseReturnValue:
    """Store ``terraform.plan.out`` (max 50 MiB); a re-upload replaces it atomically."""
    job_uuid = parse_id(job_id, "Job")
    svc = services()
    artifacts.check_uploader(svc.repository, current_worker(), job_uuid)
    source = _upload_source()
    head = source.read(64 * 1024)
    if not head:
        raise InvalidInput("Empty body")
    try:
        stored = artifacts.store_plan(
            svc.repository, svc.artifacts, current_worker(), job_uuid,
            _PrefixedStream(head, source), max_bytes=MAX_PLAN_BYTES, now=utcnow(),
        )
    except VintnerError as exc:
        # The store failed or the body was too large with part of it unread: read the rest
        # (bounded) so the client gets our answer on a usable connection, not a reset one.
        _drain(source, DRAIN_LIMIT)
        if isinstance(exc, TooLarge):
            raise TooLarge(TOO_LARGE) from None
        raise
    return {"key": stored.key, "size": stored.size, "sha256": stored.sha256}, 201


@blp.route("/<job_id>/plan-artifact", methods=["GET"])
@worker_or_operator
@blp.doc(security=[{"operator": []}, {"worker_id": [], "worker_token": []}])
def download_plan_artifact(job_id: str) -> ResponseReturnValue:
    """The plan bytes, streamed, with Content-Length and ETag "<sha256>"."""
    svc = services()
    row, reader = artifacts.open_plan(
        svc.repository, svc.artifacts, parse_id(job_id, "Job"), current_worker()
    )

    def body() -> Iterator[bytes]:
        try:
            yield from reader
        finally:
            reader.close()

    return Response(body(), mimetype="application/octet-stream", headers={
        "Content-Length": str(reader.size),
        "Content-Disposition": 'attachment; filename="terraform.plan.out"',
        "ETag": f'"{row.sha256}"',
    })

"""A small Supabase-Storage-compatible HTTP server for tests.

It implements the routes storage3 (supabase-py) actually calls for objects, under
``/storage/v1``, with the real service's error quirk: errors are HTTP 400 whose JSON body
carries the real status as a *string*, e.g.
``{"statusCode": "404", "error": "not_found", "message": "Object not found"}`` — and a missing
bucket is ``statusCode "404"`` too (``"error": "Bucket not found"``).

Routes (``<b>`` = bucket id, ``<p>`` = object path):

* ``POST /object/<b>/<p>`` upload (multipart ``file`` + ``cacheControl``; ``x-upsert: true``
  replaces, otherwise an existing object is ``409 Duplicate``); ``PUT`` = update
* ``GET /object/<b>/<p>`` download; ``GET /object/info/<b>/<p>`` object info
* ``DELETE /object/<b>`` with ``{"prefixes": [...]}``; missing paths are skipped
* ``POST /object/list/<b>`` with ``{"prefix", "limit", "offset"}``

Objects live in files under a temp folder (so the in-process server does not hold artifacts
in memory and skew memory measurements). Requests must carry ``apikey`` and
``Authorization: Bearer <key>`` with the configured key. ``fail_with`` makes every request
fail with a given status and body (to test "store down" paths); ``largest_upload`` records the
biggest uploaded object (to check the client never sends more than one part).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

PREFIX = "/storage/v1"


@dataclass
class _Object:
    path: Path
    size: int
    content_type: str
    cache_control: str
    updated_at: str
    id: str


def _error(status: str, error: str, message: str, http_status: int = 400) -> Response:
    body = {"statusCode": status, "error": error, "message": message}
    return Response(json.dumps(body), status=http_status, mimetype="application/json")


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


class StorageServer:
    """Run with :meth:`start`; ``url`` is the project URL to give supabase-py."""

    def __init__(self, service_key: str, buckets: tuple[str, ...] = ("artifacts",)) -> None:
        self.service_key = service_key
        self.buckets = set(buckets)
        self._dir = tempfile.TemporaryDirectory(prefix="storage-server-")
        self._objects: dict[tuple[str, str], _Object] = {}
        self._lock = threading.Lock()
        self.fail_with: tuple[int, dict[str, Any]] | None = None
        self.largest_upload = 0
        self.requests: list[tuple[str, str]] = []
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> StorageServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        if self._thread:
            self._thread.join(5)
        self._server.server_close()
        self._dir.cleanup()

    # -- inspection for tests -------------------------------------------------------------------

    def names(self, bucket: str = "artifacts") -> list[str]:
        with self._lock:
            return sorted(name for (b, name) in self._objects if b == bucket)

    # -- WSGI -----------------------------------------------------------------------------------

    def _wsgi(self, environ: dict, start_response: Any) -> Iterator[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except Exception as exc:  # a bug in the fake should show up as a 500, not a hang
            response = _error("500", "internal", f"{type(exc).__name__}: {exc}", 500)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        self.requests.append((request.method, request.path))
        if self.fail_with is not None:
            status, body = self.fail_with
            return _json(body, status)
        if not request.path.startswith(PREFIX + "/object/"):
            return _error("404", "not_found", "Route not found", 404)
        key = request.headers.get("apikey")
        auth = request.headers.get("Authorization", "")
        if key != self.service_key or auth != f"Bearer {self.service_key}":
            return _error("403", "Unauthorized", "invalid signature")
        parts = request.path[len(PREFIX + "/object/") :].split("/")
        method = request.method
        if parts[0] == "info" and method == "GET" and len(parts) >= 3:
            return self._info(parts[1], "/".join(parts[2:]))
        if parts[0] == "list" and method == "POST" and len(parts) == 2:
            return self._list(parts[1], request.get_json(silent=True) or {})
        if method == "DELETE" and len(parts) == 1:
            return self._remove(parts[0], request.get_json(silent=True) or {})
        if len(parts) >= 2:
            bucket, name = parts[0], "/".join(parts[1:])
            if method in ("POST", "PUT"):
                return self._upload(request, bucket, name, update=method == "PUT")
            if method == "GET":
                return self._download(bucket, name)
        return _error("404", "not_found", "Route not found", 404)

    def _bucket_missing(self, bucket: str) -> Response | None:
        if bucket not in self.buckets:
            return _error("404", "Bucket not found", "Bucket not found")
        return None

    def _upload(self, request: Request, bucket: str, name: str, *, update: bool) -> Response:
        if (missing := self._bucket_missing(bucket)) is not None:
            return missing
        upload = request.files.get("file")
        if upload is None:
            return _error("400", "InvalidRequest", "No file in the request")
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        fd, tmp = tempfile.mkstemp(dir=self._dir.name)
        with os.fdopen(fd, "wb") as fh:
            upload.save(fh)
        size = os.path.getsize(tmp)
        cache = request.form.get("cacheControl", "3600")
        with self._lock:
            self.largest_upload = max(self.largest_upload, size)
            current = self._objects.get((bucket, name))
            if update and current is None:
                os.unlink(tmp)
                return _error("404", "not_found", "Object not found")
            if current is not None and not (upsert or update):
                os.unlink(tmp)
                return _error("409", "Duplicate", "The resource already exists")
            target = Path(self._dir.name) / uuid.uuid4().hex
            os.replace(tmp, target)
            if current is not None:
                current.path.unlink(missing_ok=True)
            obj = _Object(
                path=target,
                size=size,
                content_type=upload.mimetype or "application/octet-stream",
                cache_control=f"max-age={cache}",
                updated_at=datetime.now(UTC).isoformat(),
                id=str(uuid.uuid4()),
            )
            self._objects[(bucket, name)] = obj
        return _json({"Key": f"{bucket}/{name}", "Id": obj.id})

    def _download(self, bucket: str, name: str) -> Response:
        if (missing := self._bucket_missing(bucket)) is not None:
            return missing
        with self._lock:
            obj = self._objects.get((bucket, name))
            # Open under the lock: a concurrent replace unlinks the old file, but an open
            # handle keeps reading it.
            fh = open(obj.path, "rb") if obj else None  # noqa: SIM115
        if obj is None or fh is None:
            return _error("404", "not_found", "Object not found")

        def body() -> Iterator[bytes]:
            with fh:
                while chunk := fh.read(256 * 1024):
                    yield chunk

        response = Response(body(), mimetype=obj.content_type)
        response.headers["Content-Length"] = str(obj.size)
        response.headers["Cache-Control"] = obj.cache_control
        return response

    def _info(self, bucket: str, name: str) -> Response:
        if (missing := self._bucket_missing(bucket)) is not None:
            return missing
        with self._lock:
            obj = self._objects.get((bucket, name))
        if obj is None:
            return _error("404", "not_found", "Object not found")
        return _json(
            {
                "id": obj.id,
                "name": name,
                "bucket_id": bucket,
                "size": obj.size,
                "content_type": obj.content_type,
                "cache_control": obj.cache_control,
                "created_at": obj.updated_at,
                "last_modified": obj.updated_at,
            }
        )

    def _remove(self, bucket: str, body: dict[str, Any]) -> Response:
        if (missing := self._bucket_missing(bucket)) is not None:
            return missing
        prefixes = body.get("prefixes")
        if not isinstance(prefixes, list):
            return _error("400", "InvalidRequest", "body/prefixes must be an array")
        removed = []
        with self._lock:
            for name in prefixes:
                obj = self._objects.pop((bucket, name), None)
                if obj is not None:
                    obj.path.unlink(missing_ok=True)
                    removed.append({"name": name, "bucket_id": bucket, "id": obj.id})
        return _json(removed)

    def _list(self, bucket: str, body: dict[str, Any]) -> Response:
        if (missing := self._bucket_missing(bucket)) is not None:
            return missing
        prefix = (body.get("prefix") or "").strip("/")
        limit = int(body.get("limit", 100))
        offset = int(body.get("offset", 0))
        entries: dict[str, dict[str, Any]] = {}
        with self._lock:
            for (b, name), obj in sorted(self._objects.items()):
                if b != bucket or (prefix and not name.startswith(prefix + "/")):
                    continue
                rest = name[len(prefix) + 1 :] if prefix else name
                head, _, tail = rest.partition("/")
                if tail:  # a "folder": Storage lists it once, with null id
                    entries.setdefault(head, {"name": head, "id": None, "metadata": None})
                else:
                    entries[head] = {"name": head, "id": obj.id, "metadata": {"size": obj.size}}
        return _json(list(entries.values())[offset : offset + limit])


def main() -> None:
    """``python -m tests.support.storage_server KEY``: serve until killed; prints the URL.

    Used where the server must not share the test's process (client-side memory checks).
    """
    import sys

    server = StorageServer(service_key=sys.argv[1])
    print(server.url, flush=True)
    try:
        server._server.serve_forever()
    finally:
        server._dir.cleanup()


if __name__ == "__main__":
    main()

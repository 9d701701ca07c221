"""HTTP client for Vintner's worker API (see shared/spec/worker-api.md).

Writes that are safe to repeat (log chunks carry a ``seq`` the server de-duplicates;
status posts are idempotent per the transition table; a plan re-upload replaces the old
one atomically) are retried with exponential backoff on network errors, timeouts, 429
and 5xx. The claim is never retried: a lost response would hand us a second job.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from vintner.agent import __version__
from vintner.agent.config import AgentConfig
from vintner.agent.errors import (
    ApiError,
    AuthError,
    JobLost,
    NotFound,
    TransientError,
)

log = logging.getLogger(__name__)

CANCEL_HEADER = "X-Vintner-Cancel-Requested"
_UPLOAD_CHUNK = 256 * 1024


@dataclass(frozen=True)
class ClaimedJob:
    """The 200 body of ``POST /api/jobs/claim``."""

    job: dict[str, Any]
    cloud_identity: dict[str, Any] | None

    @property
    def id(self) -> str:
        return str(self.job["id"])

    @property
    def job_type(self) -> str:
        return str(self.job.get("job_type") or "")


@dataclass(frozen=True)
class DownloadedPlan:
    path: Path
    size: int
    sha256: str


def _is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return str(body)[:200]


class WorkerClient:
    """One per agent; thread-safe (httpx.Client is), shared by heartbeat and job threads."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        on_cancel_requested: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.timings = config.timings
        self.on_cancel_requested = on_cancel_requested
        self._http = httpx.Client(
            base_url=config.url,
            headers={
                "X-Worker-ID": config.worker_id,
                "X-Worker-Token": config.worker_token,
                "User-Agent": f"vintner-agent/{__version__}",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(config.timings.http_timeout_s),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # -- plumbing -----------------------------------------------------------------------

    def _raise_for(self, response: httpx.Response, *, write: bool) -> None:
        status = response.status_code
        if status < 400:
            return
        method, path = response.request.method, response.request.url.path
        message = _error_message(response)
        if status == 401:
            raise AuthError(status, message, method, path)
        if status == 404:
            raise NotFound(status, message, method, path)
        if status == 409 and write:
            raise JobLost(status, message, method, path)
        raise ApiError(status, message, method, path)

    def _check_cancel_header(self, response: httpx.Response, job_id: str) -> None:
        if response.headers.get(CANCEL_HEADER, "").lower() == "true" and self.on_cancel_requested:
            self.on_cancel_requested(job_id)

    def _send(
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        write: bool,
        deadline_s: float | None = None,
        content_factory: Callable[[], Iterator[bytes] | bytes] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request, retrying transient failures until the deadline when ``retry``."""
        deadline = time.monotonic() + (
            self.timings.retry_deadline_s if deadline_s is None else deadline_s
        )
        attempt = 0
        while True:
            if content_factory is not None:
                kwargs["content"] = content_factory()
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:  # connect errors, timeouts, resets
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if not (retry and _is_retryable_status(response.status_code)):
                    self._raise_for(response, write=write)
                    return response
                failure = f"HTTP {response.status_code}"
            if not retry or time.monotonic() >= deadline:
                raise TransientError(f"{method} {path} failed: {failure}")
            delay = min(self.timings.retry_max_s, self.timings.retry_base_s * 2**attempt)
            delay = min(delay * random.uniform(0.8, 1.2), max(0.0, deadline - time.monotonic()))
            log.warning("%s %s failed (%s); retrying in %.1fs", method, path, failure, delay)
            time.sleep(delay)
            attempt += 1

    # -- endpoints ----------------------------------------------------------------------

    def heartbeat(
        self, *, status: str = "ONLINE", current_job_id: str | None = None
    ) -> dict[str, Any]:
        # current_job_id is always sent (null when idle): the server then releases a claimed
        # job this agent never received (a lost claim response, a restart under the same id)
        body: dict[str, Any] = {"version": __version__, "status": status,
                                "current_job_id": current_job_id}
        response = self._send("POST", "/api/workers/heartbeat", retry=False, write=False, json=body)
        return response.json()

    def claim(self) -> ClaimedJob | None:
        """Claim the next job, or None on 204. Never retried (see module docstring)."""
        response = self._send("POST", "/api/jobs/claim", retry=False, write=True)
        if response.status_code == 204 or not response.content:
            return None
        body = response.json()
        return ClaimedJob(job=body["job"], cloud_identity=body.get("cloud_identity"))

    def post_status(
        self,
        job_id: str,
        status: str,
        *,
        error_message: str | None = None,
        execution_metadata: dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if error_message is not None:
            body["error_message"] = error_message
        if execution_metadata is not None:
            body["execution_metadata"] = execution_metadata
        response = self._send(
            "PUT",
            f"/api/jobs/{job_id}/status",
            retry=True,
            write=True,
            deadline_s=deadline_s,
            json=body,
        )
        self._check_cancel_header(response, job_id)
        return response.json()

    def post_log(
        self,
        job_id: str,
        chunk: str,
        stream_type: str,
        seq: int,
        *,
        deadline_s: float | None = None,
    ) -> dict[str, Any]:
        body = {"log_chunk": chunk, "stream_type": stream_type, "seq": seq}
        response = self._send(
            "POST",
            f"/api/jobs/{job_id}/logs",
            retry=True,
            write=True,
            deadline_s=deadline_s,
            json=body,
        )
        self._check_cancel_header(response, job_id)
        return response.json()

    def upload_plan(self, job_id: str, path: Path) -> dict[str, Any]:
        """Stream the plan file from disk (Content-Length known up front, never all in memory)."""
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while block := fh.read(_UPLOAD_CHUNK):
                    yield block

        response = self._send(
            "POST",
            f"/api/jobs/{job_id}/plan-artifact",
            retry=True,
            write=True,
            content_factory=chunks,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        return response.json()

    def download_plan(self, plan_job_id: str, dest: Path) -> DownloadedPlan:
        """Stream a plan artifact to ``dest``; raises NotFound when there is none.

        Verifies the ``ETag`` (the artifact's sha256) when the server sends one.
        """
        deadline = time.monotonic() + self.timings.retry_deadline_s
        attempt = 0
        while True:
            try:
                return self._download_once(plan_job_id, dest)
            except (httpx.TransportError, TransientError) as exc:
                if time.monotonic() >= deadline:
                    raise TransientError(f"plan download failed: {exc}") from exc
                time.sleep(min(self.timings.retry_max_s, self.timings.retry_base_s * 2**attempt))
                attempt += 1

    def _download_once(self, plan_job_id: str, dest: Path) -> DownloadedPlan:
        digest = hashlib.sha256()
        size = 0
        tmp = dest.with_name(dest.name + ".part")
        with self._http.stream("GET", f"/api/jobs/{plan_job_id}/plan-artifact") as response:
            if _is_retryable_status(response.status_code):
                raise TransientError(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                response.read()
                self._raise_for(response, write=False)
            with tmp.open("wb") as fh:
                for block in response.iter_bytes(_UPLOAD_CHUNK):
                    digest.update(block)
                    size += len(block)
                    fh.write(block)
            etag = response.headers.get("ETag", "").strip('"').removeprefix("W/").strip('"')
        sha = digest.hexdigest()
        if etag and len(etag) == 64 and etag.lower() != sha:
            tmp.unlink(missing_ok=True)
            raise ApiError(502, f"plan artifact checksum mismatch (ETag {etag}, got {sha})")
        os.replace(tmp, dest)
        return DownloadedPlan(path=dest, size=size, sha256=sha)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._send("GET", f"/api/jobs/{job_id}", retry=True, write=False).json()

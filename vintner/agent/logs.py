"""Ships a job's log lines to ``POST /api/jobs/{id}/logs`` in batches.

Contract:
- lines are redacted when they are written, before anything is buffered;
- consecutive lines of one stream form a chunk; a change of stream (STDOUT/STDERR/SYSTEM)
  starts a new chunk, so streams are never mixed and their order is kept;
- a chunk is cut every ``log_flush_interval_s`` (2 s) or when ``log_flush_bytes`` (10 KiB)
  are buffered; each chunk gets the next ``seq`` when it is cut;
- one background thread sends chunks in order and retries each one (network errors,
  timeouts, 5xx) with exponential backoff until it is accepted: with the server's
  ``(job, seq)`` de-duplication nothing is lost or doubled;
- ``close()`` flushes the tail and waits for it (bounded) so it reaches the server before
  the final status is posted;
- a 409 means the job is no longer ours: the shipper stops and reports it via ``lost``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vintner.agent.config import Timings
from vintner.agent.errors import ApiError, JobLost, TransientError
from vintner.agent.redact import Redactor

log = logging.getLogger(__name__)

STDOUT, STDERR, SYSTEM = "STDOUT", "STDERR", "SYSTEM"
# Far below the server's 1 MiB limit; a single longer line is split.
MAX_CHUNK_BYTES = 256 * 1024
# Each attempt of a job numbers its chunks from its own base, so a re-run after recovery
# (attempts > 1) never collides with the seq values of an earlier attempt's chunks, which
# the server would otherwise drop as duplicates. 10**8 chunks per attempt is plenty and
# keeps seq within a signed 32-bit column for up to 21 attempts.
SEQ_STRIDE_PER_ATTEMPT = 100_000_000


class LogSink(Protocol):
    """What the shipper needs from the API client (WorkerClient satisfies it)."""

    def post_log(
        self, job_id: str, chunk: str, stream_type: str, seq: int, *, deadline_s: float | None
    ) -> object: ...


@dataclass
class _Chunk:
    seq: int
    stream: str
    text: str


class LogShipper:
    def __init__(
        self,
        sink: LogSink,
        job_id: str,
        *,
        redactor: Redactor,
        timings: Timings,
        attempt: int = 1,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._sink = sink
        self.job_id = job_id
        self._redactor = redactor
        self._timings = timings
        self._on_lost = on_lost
        self._next_seq = max(0, attempt - 1) * SEQ_STRIDE_PER_ATTEMPT
        self._cond = threading.Condition()
        self._pending_stream: str | None = None
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._outbox: deque[_Chunk] = deque()
        self._in_flight = False
        self._closing = False
        self._abandoned = False
        self.lost = False
        self.sent_chunks = 0
        self.dropped_chunks = 0
        self._thread = threading.Thread(target=self._run, name=f"logs-{job_id[:8]}", daemon=True)
        self._thread.start()

    # -- writers ------------------------------------------------------------------------

    def write(self, stream: str, line: str) -> None:
        """Queue one line (without its newline) from STDOUT, STDERR or SYSTEM."""
        # the server refuses NUL characters (PostgreSQL cannot store them): keep the line, mark
        # the character
        text = self._redactor.redact(line.rstrip("\n")).replace("\x00", "\ufffd") + "\n"
        with self._cond:
            if self._abandoned or self.lost:
                return
            if self._pending and stream != self._pending_stream:
                self._cut_locked()
            if not self._pending:
                self._pending_since = time.monotonic()
                self._pending_stream = stream
            while len(text.encode()) > MAX_CHUNK_BYTES:
                head, text = _split_utf8(text, MAX_CHUNK_BYTES)
                self._pending.append(head)
                self._cut_locked()
                self._pending_stream = stream
                self._pending_since = time.monotonic()
            self._pending.append(text)
            self._pending_bytes += len(text.encode())
            if self._pending_bytes >= self._timings.log_flush_bytes:
                self._cut_locked()
            self._cond.notify_all()

    def system(self, message: str) -> None:
        """A line about the agent's own doings (claim, phases, warnings)."""
        for line in message.splitlines() or [""]:
            self.write(SYSTEM, line)

    # -- lifecycle ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Cut the pending chunk and wait until everything queued is accepted."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._pending:
                self._cut_locked()
                self._cond.notify_all()
            while (self._outbox or self._in_flight) and not (self.lost or self._abandoned):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
            return not self._outbox and not self._in_flight

    def close(self, timeout: float | None = None) -> bool:
        """Flush the tail (bounded by ``timeout``, default the retry deadline) and stop."""
        timeout = self._timings.retry_deadline_s if timeout is None else timeout
        done = self.flush(timeout)
        with self._cond:
            self._closing = True
            if not done:
                self.dropped_chunks += len(self._outbox)
                self._abandoned = True
            self._cond.notify_all()
        self._thread.join(timeout=max(1.0, self._timings.http_timeout_s + 1))
        return done

    def abandon(self) -> None:
        """Stop at once, dropping what is queued (the job is not ours any more)."""
        with self._cond:
            self._abandoned = True
            self._closing = True
            self._outbox.clear()
            self._pending.clear()
            self._cond.notify_all()

    # -- internals ----------------------------------------------------------------------

    def _cut_locked(self) -> None:
        if not self._pending:
            return
        assert self._pending_stream is not None
        self._outbox.append(_Chunk(self._next_seq, self._pending_stream, "".join(self._pending)))
        self._next_seq += 1
        self._pending = []
        self._pending_bytes = 0
        self._pending_stream = None

    def _run(self) -> None:
        attempt = 0
        retry_at = 0.0
        while True:
            with self._cond:
                while True:
                    if self._abandoned or self.lost:
                        return
                    if (
                        self._pending
                        and time.monotonic() - self._pending_since
                        >= self._timings.log_flush_interval_s
                    ):
                        self._cut_locked()
                    now = time.monotonic()
                    if self._outbox and now >= retry_at:
                        break
                    if self._closing and not self._outbox:
                        return
                    wait = self._timings.log_flush_interval_s / 4 or 0.05
                    if self._outbox:
                        wait = min(wait, retry_at - now)
                    self._cond.wait(max(wait, 0.01))
                chunk = self._outbox[0]
                self._in_flight = True
            try:
                # One attempt per call; the backoff between attempts is ours, so that an
                # abandon() or a close deadline can stop a long retry sequence.
                self._sink.post_log(self.job_id, chunk.text, chunk.stream, chunk.seq, deadline_s=0)
            except JobLost:
                log.warning("job %s: log rejected with 409; the job is no longer ours", self.job_id)
                with self._cond:
                    self.lost = True
                    self._in_flight = False
                    self._cond.notify_all()
                if self._on_lost:
                    self._on_lost()
                return
            except (TransientError, ApiError) as exc:
                # 4xx other than 409 will not get better by retrying: drop that chunk.
                permanent = isinstance(exc, ApiError)
                with self._cond:
                    self._in_flight = False
                    if permanent:
                        log.error(
                            "job %s: log chunk seq=%s rejected: %s", self.job_id, chunk.seq, exc
                        )
                        self._outbox.popleft()
                        self.dropped_chunks += 1
                        self._cond.notify_all()
                        continue
                    delay = min(self._timings.retry_max_s, self._timings.retry_base_s * 2**attempt)
                    attempt += 1
                    retry_at = time.monotonic() + delay
                    log.warning(
                        "job %s: log chunk seq=%s not delivered (%s); retry in %.1fs",
                        self.job_id,
                        chunk.seq,
                        exc,
                        delay,
                    )
                    self._cond.notify_all()
                continue
            with self._cond:
                attempt = 0
                self._in_flight = False
                if self._outbox and self._outbox[0] is chunk:
                    self._outbox.popleft()
                self.sent_chunks += 1
                self._cond.notify_all()


def _split_utf8(text: str, max_bytes: int) -> tuple[str, str]:
    """Split ``text`` so the head encodes to at most ``max_bytes`` without breaking a character."""
    raw = text.encode()
    head = raw[:max_bytes].decode("utf-8", errors="ignore")
    return head, text[len(head) :]

"""Wake-ups across server processes: "a job was enqueued", "job X has new log lines".

A :class:`Notifier` only says *something may have changed*; the database stays the source of
truth. Waiters always re-read it after waking, so a lost or spurious wake-up costs latency,
never correctness. Use positions to avoid the lost-wake-up race between reading the database
and starting to wait::

    pos = notifier.position(channel)          # 1. note where the channel is
    while streaming:
        send(read_new_rows_from_db())          # 2. read
        pos = notifier.wait(channel, 15, after=pos)  # 3. returns at once if 1→3 saw a notify

Channels: :data:`JOBS_CHANNEL` and :func:`logs_channel` ``(job_id)``.

Implementations: PostgreSQL ``LISTEN/NOTIFY`` and SQLite polling
(:mod:`backends.sql.notify`), and :class:`LocalNotifier` (one process, no database; used by
the in-memory fake and as the building block of the others).
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod

JOBS_CHANNEL = "jobs"


def logs_channel(job_id: uuid.UUID) -> str:
    return f"logs:{job_id}"


class Notifier(ABC):
    """Publish/wait on small named channels. Thread-safe; one instance per process."""

    @abstractmethod
    def notify_job_enqueued(self) -> None:
        """Tell every process that a job is QUEUED (call after the enqueue committed)."""

    @abstractmethod
    def notify_logs(self, job_id: uuid.UUID) -> None:
        """Tell every process that ``job_id`` has new log chunks or a new status (call after
        the commit). Bursts are coalesced: many calls may become one wake-up."""

    @abstractmethod
    def position(self, channel: str) -> int:
        """The channel's current position (a counter that grows with each wake-up)."""

    @abstractmethod
    def wait(self, channel: str, timeout: float, *, after: int | None = None) -> int:
        """Block until the channel moves past ``after`` (default: its position now) or
        ``timeout`` seconds pass; return the channel's position. May return early."""

    def close(self) -> None:
        """Stop background threads and release connections."""


class LocalNotifier(Notifier):
    """In-process channels: one condition variable and one global sequence number.

    A channel's position is the sequence number of its latest wake-up (0 if none). The sequence
    being global, channels idle for :attr:`FORGET_AFTER_S` can be dropped (a long-running server
    watches one ``logs:<job>`` channel per job): a dropped channel reads as 0 again, so a waiter
    that still holds an old position just waits for the next wake-up or its timeout.
    """

    #: Forget channels not notified, queried or waited on for this long (seconds).
    FORGET_AFTER_S = 600.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._floor = 0  # raised by _bump_all: every channel is at least here
        self._channels: dict[str, tuple[int, float]] = {}  # channel -> (seq, last touched)
        self._waiters = 0
        self._closed = False

    # -- publishing (remote implementations call _bump when a notification arrives) ----------
    def notify_job_enqueued(self) -> None:
        self._bump(JOBS_CHANNEL)

    def notify_logs(self, job_id: uuid.UUID) -> None:
        self._bump(logs_channel(job_id))

    def _bump(self, *channels: str) -> None:
        now = time.monotonic()
        with self._cond:
            self._seq += 1
            for channel in channels:
                self._channels[channel] = (self._seq, now)
            if self._seq % 1024 == 0:
                self._forget_idle(now)
            self._cond.notify_all()

    def _bump_all(self) -> None:
        """Wake every waiter (something may have changed anywhere; e.g. after a reconnect)."""
        with self._cond:
            self._seq += 1
            self._floor = self._seq
            self._cond.notify_all()

    def _forget_idle(self, now: float) -> None:
        cutoff = now - self.FORGET_AFTER_S
        for channel in [c for c, (_, touched) in self._channels.items() if touched < cutoff]:
            del self._channels[channel]

    def _current(self, channel: str, touch: bool = True) -> int:
        seq = self._floor
        entry = self._channels.get(channel)
        if entry is not None:
            seq = max(seq, entry[0])
            if touch:
                self._channels[channel] = (entry[0], time.monotonic())
        return seq

    # -- waiting ------------------------------------------------------------------------------
    def position(self, channel: str) -> int:
        with self._cond:
            return self._current(channel)

    def wait(self, channel: str, timeout: float, *, after: int | None = None) -> int:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            start = self._current(channel) if after is None else after
            self._waiters += 1
            try:
                while not self._closed:
                    current = self._current(channel, touch=False)
                    remaining = deadline - time.monotonic()
                    if current > start or remaining <= 0:
                        return current
                    self._cond.wait(remaining)
                return self._current(channel, touch=False)
            finally:
                self._waiters -= 1

    @property
    def waiting(self) -> int:
        """How many threads wait right now."""
        return self._waiters

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

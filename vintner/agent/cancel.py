"""A per-job cancellation flag shared by the heartbeat thread, the API client and Terraform."""

from __future__ import annotations

import threading
from enum import StrEnum


class CancelReason(StrEnum):
    OPERATOR = "operator"  # an operator asked to cancel the job -> CANCELLED
    # The agent is being stopped hard -> FAILED (nobody cancelled it).
    SHUTDOWN = "shutdown"
    LOST = "lost"  # the server says the job is no longer ours -> drop it silently


class CancelToken:
    """Set once; the first reason wins (a later operator cancel does not relabel a shutdown)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.reason: CancelReason | None = None

    def request(self, reason: CancelReason = CancelReason.OPERATOR) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

"""The heartbeat thread: ``POST /api/workers/heartbeat`` every 30 s.

It reports the agent version, ONLINE or DRAINING, and the job in hand, and hands every
job id in the response's ``cancel_requested`` list to a callback (the runner matches it
against the job it is running).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from vintner.agent.errors import AgentError, AuthError

log = logging.getLogger(__name__)


class HeartbeatApi(Protocol):
    def heartbeat(
        self, *, status: str = "ONLINE", current_job_id: str | None = None
    ) -> dict[str, Any]: ...


class Heartbeat:
    def __init__(
        self,
        api: HeartbeatApi,
        *,
        interval_s: float,
        current_job: Callable[[], str | None],
        on_cancel_requested: Callable[[str], None],
        on_auth_error: Callable[[AuthError], None] | None = None,
    ) -> None:
        self._api = api
        self.interval_s = interval_s
        self._current_job = current_job
        self._on_cancel_requested = on_cancel_requested
        self._on_auth_error = on_auth_error
        self._draining = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self.beats = 0
        self.last_response: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return "DRAINING" if self._draining else "ONLINE"

    def start(self) -> None:
        self._thread.start()

    def set_draining(self) -> None:
        """Switch to DRAINING and tell the server right away (not at the next tick)."""
        self._draining = True
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def beat(self) -> None:
        """Send one heartbeat now (also used by the thread)."""
        response = self._api.heartbeat(status=self.status, current_job_id=self._current_job())
        self.beats += 1
        self.last_response = response
        for job_id in response.get("cancel_requested") or []:
            self._on_cancel_requested(str(job_id))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except AuthError as exc:
                log.error("heartbeat rejected: %s", exc.message)
                if self._on_auth_error:
                    self._on_auth_error(exc)
            except (AgentError, ValueError) as exc:
                # The next beat may well succeed; the server tolerates a missed one (60 s).
                log.warning("heartbeat failed: %s", exc)
            except Exception:  # a heartbeat thread that dies silently is worse than a log line
                log.exception("unexpected error in heartbeat")
            self._wake.wait(self.interval_s)
            self._wake.clear()

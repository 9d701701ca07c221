"""The agent's main loop: heartbeat thread, claim loop, one job at a time, graceful drain.

Signals: the first SIGTERM/SIGINT switches to DRAINING (told to the server at once),
lets the current job finish and exits. A second one interrupts the running Terraform and
reports the job FAILED ("agent stopped") — only an operator's cancel yields CANCELLED.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType

from vintner.agent import __version__
from vintner.agent.cancel import CancelReason, CancelToken
from vintner.agent.client import ClaimedJob, WorkerClient
from vintner.agent.config import AgentConfig
from vintner.agent.errors import (
    AgentError,
    ApiError,
    AuthError,
    JobCancelled,
    JobFailed,
    JobLost,
)
from vintner.agent.heartbeat import Heartbeat
from vintner.agent.jobs import HANDLERS, JobContext, JobOutcome
from vintner.agent.logs import LogShipper
from vintner.agent.redact import Redactor
from vintner.agent.terraform import (
    TerraformError,
    TerraformInterrupted,
    TerraformRunner,
    make_runner,
)

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE = 16 * 1024


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        terraform: TerraformRunner | None = None,
        redactor: Redactor | None = None,
        use_http_backend: bool = True,
    ) -> None:
        self.config = config
        self.redactor = redactor or Redactor()
        self.redactor.add(config.worker_token)
        self.client = WorkerClient(config, on_cancel_requested=self.request_cancel)
        self._terraform = terraform
        self.use_http_backend = use_http_backend
        self._stop = threading.Event()  # drain: no new claims
        self._fatal: AuthError | None = None
        self._lock = threading.Lock()
        self._current: tuple[str, CancelToken] | None = None
        self._signals = 0
        self.jobs_run = 0
        self.heartbeat = Heartbeat(
            self.client,
            interval_s=config.timings.heartbeat_interval_s,
            current_job=self.current_job_id,
            on_cancel_requested=self.request_cancel,
            on_auth_error=self._on_auth_error,
        )

    # -- state shared with the heartbeat thread ------------------------------------------

    def current_job_id(self) -> str | None:
        with self._lock:
            return self._current[0] if self._current else None

    def request_cancel(self, job_id: str, reason: CancelReason = CancelReason.OPERATOR) -> None:
        with self._lock:
            current = self._current
        if current and current[0] == job_id and not current[1].is_set():
            log.info("cancel requested for job %s (%s)", job_id, reason.value)
            current[1].request(reason)

    def _on_auth_error(self, exc: AuthError) -> None:
        self._fatal = exc
        self.drain()
        with self._lock:
            current = self._current
        if current:
            current[1].request(CancelReason.LOST)

    @property
    def terraform(self) -> TerraformRunner:
        if self._terraform is None:
            self._terraform = make_runner(
                self.config.terraform,
                self.config.terraform_path,
                grace_s=self.config.timings.interrupt_grace_s,
            )
        return self._terraform

    # -- lifecycle ------------------------------------------------------------------------

    def drain(self) -> None:
        """Stop taking jobs; the current one runs to its end."""
        if not self._stop.is_set():
            self._stop.set()
            self.heartbeat.set_draining()

    def handle_signal(self, signum: int, _frame: FrameType | None = None) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("signal %s: draining (finishing the current job, then exiting)", signum)
            self.drain()
            return
        job_id = self.current_job_id()
        log.warning("signal %s again: interrupting job %s", signum, job_id)
        if job_id:
            self.request_cancel(job_id, CancelReason.SHUTDOWN)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.handle_signal)
        signal.signal(signal.SIGINT, self.handle_signal)

    def run(self, *, once: bool = False) -> int:
        """Claim and run jobs until drained. ``once``: exit after the first job (or none).

        Returns the process exit code: 0 after a clean drain, 2 when the server rejected
        the worker's credentials.
        """
        log.info(
            "vintner-agent %s starting: worker %s, server %s, terraform=%s",
            __version__,
            self.config.worker_id,
            self.config.url,
            self.config.terraform,
        )
        self.heartbeat.start()
        try:
            while not self._stop.is_set():
                claimed = self._claim()
                if claimed is not None:
                    self.run_job(claimed)
                    if once:
                        break
                    continue  # look for the next job right away
                if once:
                    break
                self._stop.wait(self.config.timings.claim_interval_s)
        finally:
            self.heartbeat.stop()
            self.client.close()
        if self._fatal is not None:
            log.error(
                "stopping: the server rejected this worker's credentials (%s)", self._fatal.message
            )
            return 2
        log.info("agent stopped after %d job(s)", self.jobs_run)
        return 0

    def _claim(self) -> ClaimedJob | None:
        try:
            return self.client.claim()
        except AuthError as exc:
            self._on_auth_error(exc)
        except (AgentError, ValueError) as exc:
            log.warning("claim failed: %s", exc)
        return None

    # -- one job --------------------------------------------------------------------------

    def run_job(self, claimed: ClaimedJob) -> None:
        job_id = claimed.id
        token = CancelToken()
        with self._lock:
            self._current = (job_id, token)
        attempt = int(claimed.job.get("attempts") or 1)
        shipper = LogShipper(
            self.client,
            job_id,
            redactor=self.redactor,
            timings=self.config.timings,
            attempt=attempt,
            on_lost=lambda: token.request(CancelReason.LOST),
        )
        workdir = Path(
            tempfile.mkdtemp(prefix=f"vintner-job-{job_id[:8]}-", dir=self.config.work_dir)
        )
        log.info("job %s (%s, attempt %d) claimed", job_id, claimed.job_type, attempt)
        shipper.system(
            f"[vintner] job {job_id} ({claimed.job_type}, attempt {attempt}) claimed by worker "
            f"{self.config.worker_id} (vintner-agent {__version__})"
        )
        try:
            if claimed.job.get("cancel_requested"):
                token.request(CancelReason.OPERATOR)
            status, error, metadata = self._execute(claimed, token, shipper, workdir)
            if token.reason is CancelReason.LOST:
                raise JobLost(409, "job lost while running")
            shipper.system(f"[vintner] job finished: {status}" + (f": {error}" if error else ""))
            if not shipper.close():
                log.warning(
                    "job %s: %d log chunk(s) could not be delivered", job_id, shipper.dropped_chunks
                )
            self.client.post_status(
                job_id, status, error_message=error, execution_metadata=metadata
            )
            log.info("job %s: %s", job_id, status)
        except JobLost as exc:
            shipper.abandon()
            log.warning("job %s is no longer held by this worker (%s); dropping it", job_id, exc)
        except AgentError as exc:
            shipper.abandon()
            log.error("job %s: could not report its result: %s", job_id, exc)
        finally:
            shipper.abandon()
            self.jobs_run += 1
            with self._lock:
                self._current = None
            if self.config.keep_workdirs:
                log.info("job %s: working dir kept at %s", job_id, workdir)
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    def _execute(
        self, claimed: ClaimedJob, token: CancelToken, shipper: LogShipper, workdir: Path
    ) -> tuple[str, str | None, dict[str, object] | None]:
        """Run the handler; map every way it can end to (status, error_message, metadata)."""
        handler = HANDLERS.get(claimed.job_type)
        if handler is None:
            supported = ", ".join(sorted(HANDLERS))
            return (
                "FAILED",
                (f"unsupported job type {claimed.job_type!r}: this agent runs {supported}"),
                None,
            )
        ctx = JobContext(
            claimed=claimed,
            config=self.config,
            api=self.client,
            logs=shipper,
            terraform=self.terraform,
            redactor=self.redactor,
            cancel=token,
            workdir=workdir,
            use_http_backend=self.use_http_backend,
        )
        try:
            outcome: JobOutcome = handler(ctx)
            if token.is_set():  # cancel arrived after the last step; the work is done anyway
                shipper.system("[vintner] cancel arrived after the job completed")
            return "SUCCESS", None, outcome.execution_metadata
        except (JobCancelled, TerraformInterrupted) as exc:
            if token.reason is CancelReason.SHUTDOWN:
                return (
                    "FAILED",
                    "the agent was stopped while the job was running",
                    {"phase": "stopped"},
                )
            if token.reason is CancelReason.LOST:
                raise JobLost(409, "job lost while running") from exc
            return "CANCELLED", f"cancelled on request ({exc})", {"phase": "cancelled"}
        except TerraformError as exc:
            tail = self.redactor.redact(_from_first_error(exc.stderr_tail).strip())
            return "FAILED", _truncate(f"{exc}:\n{tail}" if tail else str(exc)), None
        except JobLost:
            raise
        except JobFailed as exc:
            return "FAILED", _truncate(self.redactor.redact(str(exc))), None
        except ApiError as exc:
            return (
                "FAILED",
                _truncate(self.redactor.redact(f"server error during the job: {exc}")),
                None,
            )
        except Exception as exc:  # a bug in a handler must still end the job, not the agent
            log.exception("job %s: unexpected error", claimed.id)
            return (
                "FAILED",
                _truncate(self.redactor.redact(f"agent error: {type(exc).__name__}: {exc}")),
                None,
            )


def _from_first_error(stderr_tail: str) -> str:
    """Terraform's diagnostics start at the first ``Error:`` line; warnings before it are noise."""
    lines = stderr_tail.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip("│ ").startswith("Error:"):
            return "\n".join(lines[i:])
    return stderr_tail


def _truncate(message: str) -> str:
    if len(message) <= MAX_ERROR_MESSAGE:
        return message
    return "…" + message[-MAX_ERROR_MESSAGE:]

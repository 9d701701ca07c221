"""What a job handler gets (JobContext) and returns (JobOutcome)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vintner.agent.cancel import CancelReason, CancelToken
from vintner.agent.client import ClaimedJob, DownloadedPlan
from vintner.agent.config import AgentConfig
from vintner.agent.credentials import JobCredentials, credentials_for_job
from vintner.agent.errors import JobCancelled, JobFailed
from vintner.agent.logs import LogShipper
from vintner.agent.redact import Redactor
from vintner.agent.terraform import TerraformResult, TerraformRunner, clean_base_env
from vintner.agent.workspace import HttpBackend, Workspace, prepare_workspace

log = logging.getLogger(__name__)


class JobApi(Protocol):
    """The part of WorkerClient job handlers use."""

    def post_status(
        self,
        job_id: str,
        status: str,
        *,
        error_message: str | None = None,
        execution_metadata: dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> dict[str, Any]: ...

    def upload_plan(self, job_id: str, path: Path) -> dict[str, Any]: ...

    def download_plan(self, plan_job_id: str, dest: Path) -> DownloadedPlan: ...


@dataclass
class JobOutcome:
    """A successful run: the final execution_metadata to post with SUCCESS."""

    execution_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobContext:
    claimed: ClaimedJob
    config: AgentConfig
    api: JobApi
    logs: LogShipper
    terraform: TerraformRunner
    redactor: Redactor
    cancel: CancelToken
    workdir: Path
    # None = Terraform's local state in the workdir (tests); jobs use the server by default.
    use_http_backend: bool = True
    _credentials: JobCredentials | None = None
    _tf_env: dict[str, str] | None = None

    @property
    def job(self) -> dict[str, Any]:
        return self.claimed.job

    @property
    def job_id(self) -> str:
        return self.claimed.id

    @property
    def snapshot(self) -> dict[str, Any]:
        snapshot = self.job.get("config_snapshot") or {}
        if not isinstance(snapshot, dict):
            raise JobFailed("config_snapshot is not an object")
        return snapshot

    @property
    def vine_id(self) -> str:
        vine_id = self.job.get("vine_id") or self.snapshot.get("vine_id")
        if not vine_id:
            raise JobFailed(f"{self.claimed.job_type} job has no vine")
        return str(vine_id)

    # -- helpers ------------------------------------------------------------------------

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise JobCancelled(self.cancel.reason or CancelReason.OPERATOR)

    def phase(self, name: str, **metadata: Any) -> None:
        """Tell the server (PROCESSING) and the log (SYSTEM) which phase the job is in."""
        self.check_cancel()
        self.logs.system(f"[vintner] phase: {name}")
        self.api.post_status(
            self.job_id,
            "PROCESSING",
            execution_metadata={"phase": name, "phase_started_at": _now_iso(), **metadata},
        )

    def credentials(self) -> JobCredentials:
        if self._credentials is None:
            creds = credentials_for_job(
                self.claimed.cloud_identity,
                self.job_id,
                self.workdir,
                region=self.snapshot.get("region"),
            )
            self.redactor.add_all(creds.secrets)
            if creds.provider:
                self.logs.system(f"[vintner] obtained {creds.provider} credentials for this job")
            self._credentials = creds
        return self._credentials

    def terraform_env(self) -> dict[str, str]:
        """The Terraform process env: host env without secrets + this job's credentials."""
        if self._tf_env is None:
            env = clean_base_env()
            env.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
            env.update(self.credentials().env)
            if self.use_http_backend:
                env["TF_HTTP_USERNAME"] = self.config.worker_id
                env["TF_HTTP_PASSWORD"] = self.config.worker_token
            self._tf_env = env
        return self._tf_env

    def prepare(self) -> Workspace:
        """Fresh working dir with the module, tfvars and (by default) the http backend."""
        backend = HttpBackend(self.config.url, self.vine_id) if self.use_http_backend else None
        tf_dir = self.workdir / "tf"
        tf_dir.mkdir()
        ws = prepare_workspace(self.snapshot, self.config.modules_dir, tf_dir, backend)
        self.logs.system(f"[vintner] module {ws.module!r} prepared in {tf_dir}")
        for warning in ws.warnings:
            self.logs.system(f"[vintner] warning: {warning}")
        return ws

    def tf(
        self, ws: Workspace, args: Sequence[str], *, capture_stdout: bool = False
    ) -> TerraformResult:
        """Run one Terraform command in the workspace, streaming its output to the job log."""
        self.check_cancel()
        self.logs.system(f"[vintner] $ terraform {' '.join(args)}")
        started = time.monotonic()
        result = self.terraform.run(
            args,
            cwd=ws.path,
            env=self.terraform_env(),
            on_line=self.logs.write,
            capture_stdout=capture_stdout,
            cancel=self.cancel,
        )
        self.logs.system(
            f"[vintner] terraform {args[0]} finished in {time.monotonic() - started:.1f}s"
        )
        return result

    def init(self, ws: Workspace) -> None:
        self.tf(ws, ["init", "-input=false", "-no-color"])


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()

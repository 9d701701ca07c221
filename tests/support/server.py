"""The real server as a process, for end-to-end tests and benchmarks.

``start_server(root)`` runs ``vintner serve --host 127.0.0.1 --port <free port>`` (the console
script of this interpreter's environment) with a SQLite file and a ``file://`` artifact folder
under ``root`` and a fresh operator token, waits until ``/healthz`` answers, and returns a
:class:`LiveServer`. ``running_server(root)`` does the same as a context manager that stops the
process afterwards and raises if the server printed a Python traceback: a request the server
could not handle must never go unnoticed just because the client got some answer.

No pytest import at module level: ``bench/`` uses this module too.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vintner_command() -> list[str]:
    """``vintner`` from this interpreter's environment (the installed console script)."""
    script = Path(sys.executable).with_name("vintner")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from vintner.cli import main; main()"]


@dataclass
class LiveServer:
    """A running ``vintner serve``."""

    url: str
    token: str
    root: Path
    proc: subprocess.Popen[bytes]
    mode: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def operator_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def stderr_path(self) -> Path:
        return self.root / "server.stderr"

    @property
    def stdout_path(self) -> Path:
        return self.root / "server.stdout"

    def stderr_text(self, start: int = 0) -> str:
        """What the server wrote to stderr (from byte ``start``)."""
        if not self.stderr_path.exists():
            return ""
        with self.stderr_path.open("rb") as fh:
            fh.seek(start)
            return fh.read().decode("utf-8", errors="replace")

    def stderr_size(self) -> int:
        return self.stderr_path.stat().st_size if self.stderr_path.exists() else 0

    def tracebacks(self, start: int = 0) -> list[str]:
        """Each traceback the server printed (from byte ``start`` of its stderr)."""
        text = self.stderr_text(start)
        starts = [m.start() for m in TRACEBACK.finditer(text)]
        return [text[s:s + 4000] for s in starts]

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 60), **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        stop_process(self.proc)


def server_env(root: Path, token: str, mode: str,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment: ours without any VINTNER_* setting, plus the server's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VINTNER_")}
    env.update(
        VINTNER_ENV=mode,
        VINTNER_INSTANCE_PATH=str(root / "instance"),
        VINTNER_DATABASE_URL=f"sqlite:///{root / 'vintner.db'}",
        VINTNER_ARTIFACT_STORE=(root / "artifacts").as_uri(),
        VINTNER_ADMIN_TOKEN=token,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def start_server(root: Path, *, mode: str = "development", env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> LiveServer:
    """Start ``vintner serve`` with its database and artifacts under ``root``; return once
    ``/healthz`` answers 200. ``mode`` is ``VINTNER_ENV`` (development: Flask's server;
    production: gunicorn)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = "e2e-operator-" + uuid.uuid4().hex
    command = [*vintner_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
               *(args or [])]
    with (root / "server.stdout").open("wb") as out, (root / "server.stderr").open("wb") as err:
        proc = subprocess.Popen(command, cwd=REPO, env=server_env(root, token, mode, env),
                                stdout=out, stderr=err, start_new_session=True)
    server = LiveServer(f"http://127.0.0.1:{port}", token, root, proc, mode)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"vintner serve exited with {proc.returncode} at start-up:\n"
                               + server.stderr_text()[-4000:])
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("vintner serve did not answer /healthz in time:\n"
                               + server.stderr_text()[-4000:])
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM to the process we started (and its session: gunicorn's workers), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # our own session (start_new_session=True)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class ServerTraceback(AssertionError):
    """The server printed a Python traceback."""


def check_no_tracebacks(server: LiveServer, start: int = 0) -> None:
    found = server.tracebacks(start)
    if found:
        raise ServerTraceback(f"the server printed {len(found)} traceback(s); the first:\n"
                              + found[0])


@contextlib.contextmanager
def running_server(root: Path, **kwargs: object) -> Iterator[LiveServer]:
    """A started server, stopped afterwards; raises :class:`ServerTraceback` if it printed one."""
    server = start_server(root, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
    check_no_tracebacks(server)

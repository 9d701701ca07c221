"""Artifact-store servers for tests and benchmarks, without pytest (``bench/`` uses this too).

* :func:`start_moto_process` — moto's S3 as a child process (``moto_server``), so its memory is
  not counted in the process that measures.
* :func:`start_storage_server_process` — tests/support/storage_server.py as a child process.
* :class:`RestartableMoto` — moto in server mode in *this* process on a fixed port, which can be
  stopped (the port then refuses connections) and started again with its buckets intact
  (moto's backends live in this process): a store that is down and comes back.

All listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from tests.support.server import REPO, free_port, stop_process

START_TIMEOUT_S = 30.0


def _wait_until_answering(url: str, proc: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} at start-up")
        if time.monotonic() > deadline:
            if proc is not None:
                stop_process(proc)
            raise RuntimeError(f"{what} did not answer at {url} in time")
        time.sleep(0.1)


def start_moto_process(log: IO[bytes] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``moto_server`` (from this interpreter's environment) on a free port: (process, URL).

    Stop it with :func:`tests.support.server.stop_process` (it runs in its own session).
    """
    port = free_port()
    command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
               "-p", str(port)]
    proc = subprocess.Popen(command, stdout=log or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait_until_answering(url, proc, "moto_server")
    return proc, url


def start_storage_server_process(service_key: str) -> tuple[subprocess.Popen[bytes], str]:
    """The Storage-compatible server as a child process: (process, project URL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.storage_server", service_key],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http://"):
        stop_process(proc)
        raise RuntimeError("the storage server did not start")
    return proc, url


class RestartableMoto:
    """moto's S3 in this process on a fixed port; :meth:`stop` really closes the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: object | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> RestartableMoto:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()  # type: ignore[attr-defined]
        # ThreadedMotoServer.stop() leaves the listening socket open: connections would then
        # hang in the backlog instead of being refused like a server that is down.
        server._server.server_close()  # type: ignore[attr-defined]

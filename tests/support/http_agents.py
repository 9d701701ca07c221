"""Agent threads that claim over HTTP against a real server (tests and ``bench/claim.py``).

Each agent is a registered worker with its own ``httpx.Client`` (its own connection): it posts
``/api/jobs/claim`` until the server answers 204, and completes every job it got with
``PUT /api/jobs/{id}/status`` ``SUCCESS``. No pytest import: ``bench/`` uses this module.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

from tests.support.server import LiveServer


@dataclass(frozen=True)
class Agent:
    worker_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Worker-ID": self.worker_id, "X-Worker-Token": self.token}


@dataclass
class AgentRun:
    claimed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    per_agent: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def register_agents(server: LiveServer, count: int, prefix: str = "agent") -> list[Agent]:
    """``count`` workers registered through the operator API."""
    agents = []
    with server.client() as client:
        for i in range(count):
            response = client.post("/api/workers/register", headers=server.operator_headers,
                                   json={"name": f"{prefix}-{i}", "mode": "self-hosted"})
            response.raise_for_status()
            body = response.json()
            agents.append(Agent(body["worker_id"], body["worker_token"]))
    return agents


def _claim_until_empty(url: str, agent: Agent, complete: bool) -> list[str]:
    claimed: list[str] = []
    with httpx.Client(base_url=url, timeout=60, headers=agent.headers) as client:
        while True:
            response = client.post("/api/jobs/claim")
            if response.status_code == 204:
                return claimed
            if response.status_code != 200:
                raise AssertionError(f"claim answered {response.status_code}: {response.text}")
            job = response.json()["job"]
            if job["worker_id"] != agent.worker_id or job["status"] != "CLAIMED":
                raise AssertionError(f"claim returned a job not held by this worker: {job}")
            claimed.append(job["id"])
            if complete:
                done = client.put(f"/api/jobs/{job['id']}/status", json={"status": "SUCCESS"})
                if done.status_code != 200:
                    raise AssertionError(
                        f"SUCCESS of {job['id']} answered {done.status_code}: {done.text}")


def run_agents(url: str, agents: list[Agent], *, complete: bool = True) -> AgentRun:
    """One thread per agent, all started together; every claimed id and every error."""
    run = AgentRun()
    lock = threading.Lock()
    barrier = threading.Barrier(len(agents) + 1)

    def work(agent: Agent) -> None:
        try:
            barrier.wait()
            mine = _claim_until_empty(url, agent, complete)
            with lock:
                run.claimed.extend(mine)
                run.per_agent[agent.worker_id] = len(mine)
        except BaseException as exc:  # reported to the caller, which fails on any
            with lock:
                run.errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(a,), daemon=True) for a in agents]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(600)
    run.seconds = time.perf_counter() - started
    if any(t.is_alive() for t in threads):
        run.errors.append("an agent thread did not finish within 600 s")
    return run

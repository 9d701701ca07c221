"""``vintner jobs logs ID --follow`` in its own process, against the real production server
(gunicorn) in another: on PostgreSQL a chunk appended through the HTTP API wakes the follower
through LISTEN/NOTIFY long before its polling interval (30 s here); on SQLite the follower
polls and still prints every chunk."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.http_agents import Agent, register_agents
from tests.support.server import (
    REPO,
    LiveServer,
    running_server,
    server_env,
    stop_process,
    vintner_command,
)


class Follower:
    """``vintner jobs logs JOB --follow`` as a process; its stdout lines arrive on a queue."""

    def __init__(self, server: LiveServer, env: dict[str, str], job_id: str,
                 poll_interval: float) -> None:
        command = [*vintner_command(), "jobs", "logs", job_id, "--follow",
                   "--poll-interval", str(poll_interval), "--tail-wait", "0.5"]
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=server_env(server.root / "cli", server.token, "production",
                                              env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode())

    def next_line(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the follower printed nothing within {timeout} s") from None

    def stop(self) -> None:
        stop_process(self.proc)  # type: ignore[arg-type]


def _claimed_job(server: LiveServer) -> tuple[httpx.Client, str]:
    agent: Agent = register_agents(server, 1, prefix="follow")[0]
    client = httpx.Client(base_url=server.url, timeout=30, headers=agent.headers)
    enqueued = client.post("/api/jobs", headers=server.operator_headers,
                           json={"job_type": "FETCH_RESOURCES"})
    assert enqueued.status_code == 201, enqueued.text
    claimed = client.post("/api/jobs/claim")
    assert claimed.status_code == 200, claimed.text
    return client, claimed.json()["job"]["id"]


def _append(client: httpx.Client, job_id: str, text: str, seq: int) -> None:
    response = client.post(f"/api/jobs/{job_id}/logs", json={"log_chunk": text, "seq": seq})
    assert response.status_code == 201, response.text


def _follow_and_time(server: LiveServer, env: dict[str, str], poll_interval: float,
                     wait_for: float) -> list[float]:
    """The follower's delay for each of three appends after it printed the first chunk."""
    client, job_id = _claimed_job(server)
    _append(client, job_id, "first\n", 0)
    follower = Follower(server, env, job_id, poll_interval)
    try:
        assert follower.next_line(30) == "first\n"  # start-up (and its first read) done
        time.sleep(1.0)  # the follower is waiting now
        delays = []
        for seq in (1, 2, 3):
            started = time.monotonic()
            _append(client, job_id, f"line {seq}\n", seq)
            assert follower.next_line(wait_for) == f"line {seq}\n"
            delays.append(time.monotonic() - started)
            time.sleep(0.3)
        done = client.put(f"/api/jobs/{job_id}/status", json={"status": "SUCCESS"})
        assert done.status_code == 200, done.text
        assert follower.proc.wait(timeout=20) == 0  # ends after the job and its tail
        return delays
    finally:
        follower.stop()
        client.close()


@pytest.fixture
def pg_live(pg_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    env = {"VINTNER_DATABASE_URL": pg_url}
    with running_server(tmp_path / "server", mode="production", env=env) as server:
        yield server, env


@pytest.fixture
def sqlite_live(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    root = tmp_path / "server"
    env = {"VINTNER_DATABASE_URL": f"sqlite:///{root / 'vintner.db'}"}
    with running_server(root, mode="production", env=env) as server:
        yield server, env


@pytest.mark.postgres
def test_follower_is_woken_by_notify_on_postgres(
    pg_live: tuple[LiveServer, dict[str, str]],
) -> None:
    server, env = pg_live
    # polling every 30 s: a chunk seen within 3 s came through LISTEN/NOTIFY
    delays = _follow_and_time(server, env, poll_interval=30, wait_for=3)
    assert max(delays) < 3, delays


def test_follower_polls_on_sqlite(sqlite_live: tuple[LiveServer, dict[str, str]]) -> None:
    server, env = sqlite_live
    delays = _follow_and_time(server, env, poll_interval=0.5, wait_for=10)
    assert max(delays) < 10, delays

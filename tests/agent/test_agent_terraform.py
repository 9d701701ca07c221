"""Both Terraform runners against real Terraform, on the example module, with local state."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from vintner.agent.cancel import CancelToken
from vintner.agent.jobs.terraform_steps import summarize_plan
from vintner.agent.terraform import (
    TerraformError,
    TerraformInterrupted,
    TerraformRunner,
    clean_base_env,
)
from vintner.agent.workspace import PLAN_FILE, prepare_workspace

FINALIZE_OUTPUTS = {
    "cluster_name", "cluster_endpoint", "eks_cluster_arn", "argocd_url", "argocd_admin_password",
    "rds_cluster_endpoint", "rds_cluster_reader_endpoint", "rds_cluster_identifier",
    "rds_cluster_arn", "rds_master_credentials_secret_arn", "rds_extra_credentials_secret_arn",
    "rds_credentials_kms_key_arn", "redis_primary_endpoint_address",
    "redis_reader_endpoint_address", "databases", "caches",
}
DB_KEYS = {
    "cluster_endpoint", "cluster_reader_endpoint", "cluster_identifier", "cluster_arn",
    "master_credentials_secret_arn", "extra_credentials_secret_arn", "credentials_kms_key_arn",
}


def snapshot(**variables: object) -> dict[str, object]:
    return {
        "id": "11111111-2222-3333-4444-555555555555",
        "project_name": "acme",
        "environment_stage": "staging",
        "region": "eu-central-1",
        "cluster": {"cluster_version": "1.31", "node_min_size": 1},
        "databases": [{"name": "main", "engine": None}, {"name": "analytics"}],
        "caches": [{"name": "sessions", "engine": "valkey"}],
        "network": None,
        "terraform": {"module": "vine-basic", "variables": variables},
    }


class Lines:
    """Collects streamed lines; lets a test wait for one."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.cond = threading.Condition()

    def __call__(self, stream: str, line: str) -> None:
        with self.cond:
            self.lines.append((stream, line))
            self.cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: any(text in line for _, line in self.lines), timeout)

    def text(self, stream: str | None = None) -> str:
        return "\n".join(line for s, line in self.lines if stream in (None, s))


def run(tf: TerraformRunner, ws: Path, args: list[str], **kw: object):
    return tf.run(args, cwd=ws, env=clean_base_env(), **kw)  # type: ignore[arg-type]


def test_full_cycle_plan_apply_outputs_destroy(
    terraform_runner: TerraformRunner, modules_dir: Path, tmp_path: Path
) -> None:
    ws = prepare_workspace(snapshot(), modules_dir, tmp_path, backend=None).path
    lines = Lines()
    run(terraform_runner, ws, ["init", "-input=false", "-no-color"], on_line=lines)
    assert "successfully initialized" in lines.text("STDOUT")

    run(terraform_runner, ws, ["plan", "-input=false", "-no-color", f"-out={PLAN_FILE}"],
        on_line=lines)
    assert (ws / PLAN_FILE).stat().st_size > 0
    shown = run(terraform_runner, ws, ["show", "-json", PLAN_FILE], capture_stdout=True)
    summary = summarize_plan(json.loads(shown.stdout))
    # cluster + 2 databases + 1 cache
    assert (summary["add"], summary["change"], summary["destroy"]) == (4, 0, 0)
    assert {rc["address"] for rc in summary["resource_changes"]} == {
        "terraform_data.cluster",
        'terraform_data.database["main"]',
        'terraform_data.database["analytics"]',
        'terraform_data.cache["sessions"]',
    }
    assert all(rc["actions"] == ["create"] for rc in summary["resource_changes"])

    run(terraform_runner, ws, ["apply", "-input=false", "-no-color", "-auto-approve", PLAN_FILE],
        on_line=lines)
    assert "Apply complete! Resources: 4 added" in lines.text()

    out = run(terraform_runner, ws, ["output", "-json"], capture_stdout=True)
    outputs = json.loads(out.stdout)
    assert set(outputs) >= FINALIZE_OUTPUTS
    assert outputs["argocd_admin_password"]["sensitive"] is True
    assert outputs["cluster_name"]["value"] == "acme-staging-eks"
    assert set(outputs["databases"]["value"]) == {"main", "analytics"}
    for db in outputs["databases"]["value"].values():
        assert set(db) == DB_KEYS
    assert set(outputs["caches"]["value"]["sessions"]) == {
        "primary_endpoint_address", "reader_endpoint_address",
    }
    # a second plan is a no-op
    run(terraform_runner, ws, ["plan", "-input=false", "-no-color", f"-out={PLAN_FILE}"])
    shown = run(terraform_runner, ws, ["show", "-json", PLAN_FILE], capture_stdout=True)
    assert summarize_plan(json.loads(shown.stdout))["resource_changes"] == []

    run(terraform_runner, ws, ["apply", "-destroy", "-auto-approve", "-input=false", "-no-color"],
        on_line=lines)
    assert "4 destroyed" in lines.text()


def test_saved_plan_applies_in_a_fresh_directory(
    terraform_runner: TerraformRunner, modules_dir: Path, tmp_path: Path
) -> None:
    """What DEPLOY does with a PLAN job's artifact: a new workdir, init, apply that file."""
    plan_dir = prepare_workspace(snapshot(), modules_dir, tmp_path / "plan", backend=None).path
    run(terraform_runner, plan_dir, ["init", "-input=false", "-no-color"])
    run(terraform_runner, plan_dir, ["plan", "-input=false", "-no-color", f"-out={PLAN_FILE}"])
    deploy_dir = prepare_workspace(snapshot(), modules_dir, tmp_path / "deploy", backend=None).path
    (deploy_dir / PLAN_FILE).write_bytes((plan_dir / PLAN_FILE).read_bytes())
    run(terraform_runner, deploy_dir, ["init", "-input=false", "-no-color"])
    lines = Lines()
    run(terraform_runner, deploy_dir,
        ["apply", "-input=false", "-no-color", "-auto-approve", PLAN_FILE], on_line=lines)
    assert "Resources: 4 added" in lines.text()


def test_failure_raises_with_stderr_tail(
    terraform_runner: TerraformRunner, modules_dir: Path, tmp_path: Path
) -> None:
    ws = prepare_workspace(snapshot(fail_apply=True), modules_dir, tmp_path, backend=None).path
    run(terraform_runner, ws, ["init", "-input=false", "-no-color"])
    with pytest.raises(TerraformError) as info:
        run(terraform_runner, ws, ["apply", "-input=false", "-no-color", "-auto-approve"])
    assert info.value.returncode != 0
    assert "failing on purpose" in info.value.stderr_tail
    assert "local-exec provisioner error" in info.value.stderr_tail


def test_cancel_interrupts_a_slow_apply(
    terraform_runner: TerraformRunner, modules_dir: Path, tmp_path: Path
) -> None:
    # a delay no other test uses, so the check below sees only this test's sleep
    ws = prepare_workspace(snapshot(apply_delay_s=173), modules_dir, tmp_path, backend=None).path
    run(terraform_runner, ws, ["init", "-input=false", "-no-color"])
    cancel = CancelToken()
    lines = Lines()
    errors: list[BaseException] = []

    def apply() -> None:
        try:
            run(terraform_runner, ws, ["apply", "-input=false", "-no-color", "-auto-approve"],
                on_line=lines, cancel=cancel)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=apply)
    thread.start()
    assert lines.wait_for("waiting 173s", timeout=60), lines.text()
    time.sleep(0.5)  # let the shell exec the sleep
    started = time.monotonic()
    cancel.request()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert time.monotonic() - started < 20
    assert len(errors) == 1 and isinstance(errors[0], TerraformInterrupted)
    # Terraform handled SIGINT itself (graceful stop), no kill was needed ...
    assert "Interrupt received" in lines.text() or errors[0].killed
    # ... and the local-exec `sleep 173` did not outlive it.
    assert "sleep 173" not in subprocess.run(
        ["ps", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout
    # the state was saved (the graceful path writes what was done so far)
    assert (ws / "terraform.tfstate").exists()


def test_job_env_reaches_terraform_and_not_the_agent(
    terraform_runner: TerraformRunner, tmp_path: Path
) -> None:
    (tmp_path / "main.tf").write_text(
        'resource "terraform_data" "env" {\n'
        '  provisioner "local-exec" { command = "echo secret-is-$JOB_ONLY_SECRET" }\n'
        "}\n"
    )
    env = clean_base_env()
    env["JOB_ONLY_SECRET"] = "s3cr3t-value"
    lines = Lines()
    terraform_runner.run(["init", "-input=false", "-no-color"], cwd=tmp_path, env=env)
    terraform_runner.run(
        ["apply", "-input=false", "-no-color", "-auto-approve"], cwd=tmp_path, env=env,
        on_line=lines,
    )
    assert "secret-is-s3cr3t-value" in lines.text()
    assert "JOB_ONLY_SECRET" not in os.environ


def test_clean_base_env_drops_host_credentials() -> None:
    env = clean_base_env({
        "PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "x", "VINTNER_WORKER_TOKEN": "t",
        "GRAPE_WORKER_TOKEN": "t", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1",
        "TF_HTTP_PASSWORD": "p", "AWS_PROFILE": "prod",
    })
    assert env == {"PATH": "/bin", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1"}
    assert "TF_CLI_CONFIG_FILE" not in clean_base_env({"TF_CLI_CONFIG_FILE": "/nonexistent/rc"})
    kept = {"TF_CLI_CONFIG_FILE": "/dev/null"}
    assert clean_base_env(kept) == kept


def test_version(terraform_runner: TerraformRunner) -> None:
    assert terraform_runner.version().startswith("Terraform v")


def test_example_vine_document_plans(
    terraform_runner: TerraformRunner, modules_dir: Path, tmp_path: Path
) -> None:
    """examples/vine.json, as a config snapshot, is a valid input for its module."""
    vine = json.loads((modules_dir.parent / "vine.json").read_text())
    ws = prepare_workspace(vine, modules_dir, tmp_path, backend=None).path
    run(terraform_runner, ws, ["init", "-input=false", "-no-color"])
    run(terraform_runner, ws, ["plan", "-input=false", "-no-color", f"-out={PLAN_FILE}"])
    shown = run(terraform_runner, ws, ["show", "-json", PLAN_FILE], capture_stdout=True)
    assert summarize_plan(json.loads(shown.stdout))["add"] == 4

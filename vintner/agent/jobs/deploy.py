"""DEPLOY: apply exactly the plan of ``plan_job_id`` (or plan now), then read the outputs."""

from __future__ import annotations

from typing import Any

from vintner.agent.errors import NotFound
from vintner.agent.jobs.base import JobContext, JobOutcome
from vintner.agent.jobs.terraform_steps import plan_and_summarize, read_outputs


def run_deploy(ctx: JobContext) -> JobOutcome:
    ctx.phase("init")
    ws = ctx.prepare()
    ctx.init(ws)
    metadata: dict[str, Any] = {}
    plan_job_id = ctx.job.get("plan_job_id")
    downloaded = None
    if plan_job_id:
        ctx.phase("download_plan", plan_job_id=plan_job_id)
        try:
            downloaded = ctx.api.download_plan(str(plan_job_id), ws.plan_file)
        except NotFound:
            ctx.logs.system(
                f"[vintner] warning: plan artifact of job {plan_job_id} not found; "
                "planning again and applying that plan"
            )
    if downloaded is not None:
        ctx.logs.system(
            f"[vintner] applying plan of job {plan_job_id} "
            f"({downloaded.size} bytes, sha256 {downloaded.sha256})"
        )
        metadata.update(plan_job_id=plan_job_id)
    else:
        ctx.phase("plan")
        metadata["plan_summary"] = plan_and_summarize(ctx, ws)
    sha = downloaded.sha256 if downloaded else _sha256(ws.plan_file)
    metadata["applied_plan_sha256"] = sha
    ctx.phase("apply", **metadata)
    ctx.tf(ws, ["apply", "-input=false", "-no-color", "-auto-approve", ws.plan_file.name])
    ctx.phase("outputs")
    metadata["outputs"] = read_outputs(ctx, ws)
    metadata["phase"] = "done"
    return JobOutcome(metadata)


def _sha256(path: Any) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()

"""PLAN: init, plan -out, show -json → plan_summary, upload the plan file."""

from __future__ import annotations

from vintner.agent.jobs.base import JobContext, JobOutcome
from vintner.agent.jobs.terraform_steps import plan_and_summarize


def run_plan(ctx: JobContext) -> JobOutcome:
    ctx.phase("init")
    ws = ctx.prepare()
    ctx.init(ws)
    ctx.phase("plan")
    summary = plan_and_summarize(ctx, ws)
    ctx.phase("upload", plan_summary=summary)
    artifact = ctx.api.upload_plan(ctx.job_id, ws.plan_file)
    ctx.logs.system(
        f"[vintner] plan uploaded: {artifact.get('size')} bytes, sha256 {artifact.get('sha256')}"
    )
    return JobOutcome({"phase": "done", "plan_summary": summary, "plan_artifact": artifact})

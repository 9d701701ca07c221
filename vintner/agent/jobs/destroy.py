"""DESTROY: ``terraform apply -destroy`` against the vine's state."""

from __future__ import annotations

from vintner.agent.jobs.base import JobContext, JobOutcome


def run_destroy(ctx: JobContext) -> JobOutcome:
    ctx.phase("init")
    ws = ctx.prepare()
    ctx.init(ws)
    ctx.phase("destroy")
    ctx.tf(ws, ["apply", "-destroy", "-auto-approve", "-input=false", "-no-color"])
    return JobOutcome({"phase": "done"})

"""Terraform steps shared by PLAN and DEPLOY: plan + summary, outputs."""

from __future__ import annotations

import json
from typing import Any

from vintner.agent.errors import JobFailed
from vintner.agent.jobs.base import JobContext
from vintner.agent.workspace import PLAN_FILE, Workspace


def summarize_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """``show -json`` of a plan → {add, change, destroy, resource_changes:[{address, actions}]}.

    Counted like Terraform's "Plan: X to add, Y to change, Z to destroy": a replacement
    counts as one add and one destroy. No-op and read-only entries are left out. Values are
    never copied (they may be sensitive): addresses and actions only.
    """
    add = change = destroy = 0
    changes = []
    for rc in plan.get("resource_changes") or []:
        actions = list((rc.get("change") or {}).get("actions") or [])
        if actions in (["no-op"], ["read"]) or not actions:
            continue
        if "create" in actions:
            add += 1
        if "delete" in actions:
            destroy += 1
        if actions == ["update"]:
            change += 1
        changes.append({"address": rc.get("address"), "actions": actions})
    return {"add": add, "change": change, "destroy": destroy, "resource_changes": changes}


def plan_and_summarize(ctx: JobContext, ws: Workspace, *, destroy: bool = False) -> dict[str, Any]:
    args = ["plan", "-input=false", "-no-color", f"-out={PLAN_FILE}"]
    if destroy:
        args.insert(1, "-destroy")
    ctx.tf(ws, args)
    ctx.phase("show")
    shown = ctx.tf(ws, ["show", "-json", "-no-color", PLAN_FILE], capture_stdout=True)
    try:
        summary = summarize_plan(json.loads(shown.stdout))
    except ValueError as exc:
        raise JobFailed(f"could not parse `terraform show -json` output: {exc}") from exc
    ctx.logs.system(
        f"[vintner] plan: {summary['add']} to add, {summary['change']} to change, "
        f"{summary['destroy']} to destroy"
    )
    return summary


def read_outputs(ctx: JobContext, ws: Workspace) -> dict[str, Any]:
    """``terraform output -json`` (the raw {name: {value, type, sensitive}} shape).

    Sensitive values go to the server in execution_metadata (finalizeDeployment needs
    them) and are added to the redactor so no later log line can show them.
    """
    result = ctx.tf(ws, ["output", "-json", "-no-color"], capture_stdout=True)
    try:
        outputs = json.loads(result.stdout or "{}")
    except ValueError as exc:
        raise JobFailed(f"could not parse `terraform output -json`: {exc}") from exc
    for item in outputs.values():
        if isinstance(item, dict) and item.get("sensitive"):
            _mark_secret(ctx, item.get("value"))
    return outputs


def _mark_secret(ctx: JobContext, value: Any) -> None:
    if isinstance(value, str):
        ctx.redactor.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            _mark_secret(ctx, v)
    elif isinstance(value, list):
        for v in value:
            _mark_secret(ctx, v)

"""CONNECTION_TEST: prove the agent can act as the job's cloud identity."""

from __future__ import annotations

from vintner.agent.credentials import (
    assume_aws_role,
    aws_caller_identity,
    session_name,
    validate_aws_identity,
)
from vintner.agent.errors import JobFailed
from vintner.agent.jobs.base import JobContext, JobOutcome


def run_connection_test(ctx: JobContext) -> JobOutcome:
    identity = ctx.claimed.cloud_identity
    if not identity:
        raise JobFailed("CONNECTION_TEST job has no cloud identity")
    provider = identity.get("provider")
    if provider != "aws":
        raise JobFailed(
            f"CONNECTION_TEST for provider {provider!r} is not supported by the reference agent "
            "(only aws can be verified)"
        )
    role_arn, _, expected_account = validate_aws_identity(identity)
    ctx.phase("assume_role", role_arn=role_arn)
    ctx.logs.system(f"[vintner] assuming {role_arn} as session {session_name(ctx.job_id)}")
    creds = assume_aws_role(identity, ctx.job_id, ctx.snapshot.get("region"))
    ctx.redactor.add_all([creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]])
    ctx.phase("get_caller_identity")
    caller = aws_caller_identity(creds, ctx.snapshot.get("region"))
    ctx.logs.system(f"[vintner] caller identity: {caller['arn']} (account {caller['account']})")
    if caller["account"] != expected_account:
        raise JobFailed(
            f"assumed role is in account {caller['account']}, expected {expected_account}"
        )
    return JobOutcome(
        {
            "phase": "done",
            "provider": "aws",
            "account_id": caller["account"],
            "caller_arn": caller["arn"],
            "role_arn": role_arn,
            "verified": True,
        }
    )

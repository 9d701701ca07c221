"""Per-job cloud credentials, for the Terraform process environment only.

Nothing here touches ``os.environ``: the result is a dict the job merges into the env of
the Terraform child process, plus the list of secret values the redactor must mask.

- aws: STS AssumeRole on the identity's role ARN with its ExternalId (confused-deputy
  protection) and a RoleSessionName naming the job; the agent's own AWS credentials (the
  default boto3 chain) are used only to make that call. The STS endpoint follows boto3's
  standard ``AWS_ENDPOINT_URL_STS`` / ``AWS_ENDPOINT_URL`` variables.
- gcp: the workload-identity-federation JSON is written to the job's temp dir (mode 600)
  and named by ``GOOGLE_APPLICATION_CREDENTIALS``.
- azure: ``ARM_TENANT_ID`` / ``ARM_CLIENT_ID`` / ``ARM_SUBSCRIPTION_ID`` with
  ``ARM_USE_OIDC=true``; the federated token source comes from the host (no secret is stored).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vintner.agent.errors import JobFailed

# Same rules the server validates with (domain.md).
ROLE_ARN_RE = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
SESSION_DURATION_S = 3600
# Host variables that carry an OIDC token source for Azure; passed through when present.
_AZURE_PASSTHROUGH = (
    "ARM_OIDC_TOKEN",
    "ARM_OIDC_TOKEN_FILE_PATH",
    "ARM_OIDC_REQUEST_TOKEN",
    "ARM_OIDC_REQUEST_URL",
    "ARM_ENVIRONMENT",
)


class CredentialError(JobFailed):
    """Credentials could not be obtained; the message is meant for the operator."""


@dataclass
class JobCredentials:
    provider: str | None
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # safe to report (no secrets)


def session_name(job_id: str) -> str:
    # RoleSessionName: 2-64 chars of [\w+=,.@-].
    return re.sub(r"[^\w+=,.@-]", "-", f"vintner-job-{job_id}")[:64]


def validate_aws_identity(identity: Mapping[str, Any]) -> tuple[str, str, str]:
    """Return (role_arn, external_id, account_id) or raise CredentialError with a clear reason."""
    role_arn = identity.get("role_arn")
    if not isinstance(role_arn, str) or not role_arn:
        raise CredentialError("AWS cloud identity has no role_arn")
    match = ROLE_ARN_RE.match(role_arn)
    if not match:
        raise CredentialError(
            f"malformed AWS role ARN {role_arn!r}: "
            "expected arn:aws:iam::<12-digit account>:role/<name>"
        )
    external_id = identity.get("external_id")
    if not isinstance(external_id, str) or not EXTERNAL_ID_RE.match(external_id):
        raise CredentialError("AWS cloud identity has no valid external_id")
    return role_arn, external_id, match.group(2)


def _sts_client(region: str | None, credentials: Mapping[str, str] | None = None) -> Any:
    try:
        import boto3
    except ImportError as exc:  # the agent runs without boto3 for non-AWS jobs
        raise CredentialError(
            "boto3 is required for AWS jobs (pip install 'vintner[agent]')"
        ) from exc
    kwargs: dict[str, Any] = {}
    if credentials:
        kwargs.update(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
    session = boto3.session.Session(
        region_name=region or os.environ.get("AWS_REGION") or "us-east-1"
    )
    return session.client("sts", **kwargs)


def assume_aws_role(
    identity: Mapping[str, Any], job_id: str, region: str | None = None
) -> dict[str, Any]:
    """STS AssumeRole; returns the ``Credentials`` dict of the response."""
    from botocore.exceptions import BotoCoreError, ClientError

    role_arn, external_id, _ = validate_aws_identity(identity)
    try:
        response = _sts_client(region).assume_role(
            RoleArn=role_arn,
            RoleSessionName=session_name(job_id),
            ExternalId=external_id,
            DurationSeconds=SESSION_DURATION_S,
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CredentialError(
            f"could not assume role {role_arn}: "
            f"{error.get('Code', 'error')}: {error.get('Message', exc)}"
        ) from exc
    except BotoCoreError as exc:
        raise CredentialError(f"could not assume role {role_arn}: {exc}") from exc
    return dict(response["Credentials"])


def aws_caller_identity(
    credentials: Mapping[str, str], region: str | None = None
) -> dict[str, str]:
    """GetCallerIdentity made with the temporary credentials (proves they work)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = _sts_client(region, credentials).get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        raise CredentialError(f"GetCallerIdentity with the assumed role failed: {exc}") from exc
    return {"account": response["Account"], "arn": response["Arn"], "user_id": response["UserId"]}


def credentials_for_job(
    cloud_identity: Mapping[str, Any] | None,
    job_id: str,
    workdir: Path,
    *,
    region: str | None = None,
) -> JobCredentials:
    """Obtain the job's credentials and the env/secrets that carry them."""
    if not cloud_identity:
        return JobCredentials(provider=None)
    provider = cloud_identity.get("provider")
    if provider == "aws":
        creds = assume_aws_role(cloud_identity, job_id, region)
        env = {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }
        if region:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
        return JobCredentials(
            provider="aws",
            env=env,
            secrets=[creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]],
            details={
                "role_arn": cloud_identity.get("role_arn"),
                "session_name": session_name(job_id),
            },
        )
    if provider == "gcp":
        return _gcp_credentials(cloud_identity, workdir)
    if provider == "azure":
        return _azure_credentials(cloud_identity)
    raise CredentialError(f"unsupported cloud provider {provider!r}")


def _gcp_credentials(identity: Mapping[str, Any], workdir: Path) -> JobCredentials:
    raw = identity.get("wif_config")
    try:
        config = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise CredentialError("GCP wif_config is not valid JSON") from exc
    if not isinstance(config, dict) or not config.get("type"):
        raise CredentialError("GCP wif_config must be a credential JSON object with a 'type'")
    path = workdir / "gcp-wif-credentials.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh)
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(path)}
    project = identity.get("project_id")
    if project:
        env["GOOGLE_PROJECT"] = env["GOOGLE_CLOUD_PROJECT"] = env["CLOUDSDK_CORE_PROJECT"] = str(
            project
        )
    return JobCredentials(
        provider="gcp",
        env=env,
        details={
            "project_id": project,
            "service_account_email": identity.get("service_account_email"),
            "credential_type": config.get("type"),
        },
    )


def _azure_credentials(identity: Mapping[str, Any]) -> JobCredentials:
    names = {
        "tenant_id": "ARM_TENANT_ID",
        "client_id": "ARM_CLIENT_ID",
        "subscription_id": "ARM_SUBSCRIPTION_ID",
    }
    env: dict[str, str] = {}
    for key, var in names.items():
        value = identity.get(key)
        if not isinstance(value, str) or not value:
            raise CredentialError(f"Azure cloud identity has no {key}")
        env[var] = value
    env["ARM_USE_OIDC"] = "true"
    for var in _AZURE_PASSTHROUGH:
        if os.environ.get(var):
            env[var] = os.environ[var]
    secrets = [env[v] for v in ("ARM_OIDC_TOKEN", "ARM_OIDC_REQUEST_TOKEN") if v in env]
    return JobCredentials(
        provider="azure",
        env=env,
        secrets=secrets,
        details={"tenant_id": env["ARM_TENANT_ID"], "subscription_id": env["ARM_SUBSCRIPTION_ID"]},
    )

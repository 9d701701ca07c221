"""Per-job credentials against moto's STS in server mode (real boto3 over real HTTP)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from vintner.agent.credentials import (
    CredentialError,
    assume_aws_role,
    aws_caller_identity,
    credentials_for_job,
    session_name,
)

moto_server = pytest.importorskip("moto.server")

JOB = "0b9d2c4e-7a51-4f3e-8d2a-6c1e9f4b7a20"
ROLE = "arn:aws:iam::123456789012:role/GrapeProvisionerRole"
EXTERNAL_ID = "5d0f3c2a-1b4e-4a8f-9c7d-2e6b1a0f9d31"


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # The agent's own (host) credentials, used only to call AssumeRole.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTHOSTHOSTHOST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
    try:
        yield url
    finally:
        server.stop()


def identity(**overrides: str) -> dict[str, str]:
    return {"provider": "aws", "role_arn": ROLE, "external_id": EXTERNAL_ID,
            "account_id": "123456789012", **overrides}


def test_assume_role_with_external_id_and_job_session_name(sts: str, tmp_path: Path) -> None:
    from moto.sts.models import sts_backends

    before = dict(os.environ)
    creds = credentials_for_job(identity(), JOB, tmp_path, region="eu-west-1")
    assert os.environ == before  # nothing leaked into the agent's own environment
    assert creds.provider == "aws"
    assert set(creds.env) >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert creds.env["AWS_REGION"] == "eu-west-1"
    assert creds.env["AWS_ACCESS_KEY_ID"] != "AKIAHOSTHOSTHOSTHOST"
    assert set(creds.secrets) == {creds.env["AWS_ACCESS_KEY_ID"],
                                  creds.env["AWS_SECRET_ACCESS_KEY"],
                                  creds.env["AWS_SESSION_TOKEN"]}
    # moto (same process, server mode) records what reached it over HTTP.
    roles = sts_backends["123456789012"]["aws"].assumed_roles
    assumed = [r for r in roles if r.session_name == session_name(JOB)]
    assert assumed, "AssumeRole did not reach the STS endpoint"
    assert assumed[-1].role_arn == ROLE
    assert assumed[-1].external_id == EXTERNAL_ID
    assert JOB in assumed[-1].session_name


def test_caller_identity_with_temporary_credentials(sts: str) -> None:
    creds = assume_aws_role(identity(), JOB)
    caller = aws_caller_identity(creds)
    assert caller["account"] == "123456789012"
    assert "GrapeProvisionerRole" in caller["arn"]
    assert session_name(JOB) in caller["arn"]


@pytest.mark.parametrize("arn", [
    "arn:aws:iam::12345:role/X",
    "arn:aws:iam::123456789012:user/X",
    "not-an-arn",
    "arn:aws:iam::123456789012:role/",
])
def test_malformed_role_arn_is_a_clear_error(arn: str, tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="malformed AWS role ARN"):
        credentials_for_job(identity(role_arn=arn), JOB, tmp_path)


def test_unreachable_sts_is_a_credential_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTHOSTHOSTHOST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(CredentialError, match="could not assume role"):
        assume_aws_role(identity(), JOB)


def test_session_name_is_valid_for_sts() -> None:
    name = session_name(JOB)
    assert 2 <= len(name) <= 64 and JOB in name


def test_gcp_writes_wif_config_into_the_job_dir(tmp_path: Path) -> None:
    wif = {"type": "external_account", "audience": "//iam.googleapis.com/x",
           "credential_source": {"file": "/var/run/token"}}
    before = dict(os.environ)
    creds = credentials_for_job(
        {"provider": "gcp", "project_id": "proj-1", "wif_config": json.dumps(wif)}, JOB, tmp_path
    )
    path = Path(creds.env["GOOGLE_APPLICATION_CREDENTIALS"])
    assert path.parent == tmp_path
    assert json.loads(path.read_text()) == wif
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert creds.env["GOOGLE_CLOUD_PROJECT"] == "proj-1"
    assert os.environ == before


def test_gcp_bad_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="not valid JSON"):
        credentials_for_job({"provider": "gcp", "wif_config": "{nope"}, JOB, tmp_path)


def test_azure_env(tmp_path: Path) -> None:
    creds = credentials_for_job(
        {"provider": "azure", "tenant_id": "t-1", "client_id": "c-1", "subscription_id": "s-1"},
        JOB, tmp_path,
    )
    assert creds.env["ARM_TENANT_ID"] == "t-1"
    assert creds.env["ARM_CLIENT_ID"] == "c-1"
    assert creds.env["ARM_SUBSCRIPTION_ID"] == "s-1"
    assert creds.env["ARM_USE_OIDC"] == "true"


def test_no_identity_means_no_credentials(tmp_path: Path) -> None:
    assert credentials_for_job(None, JOB, tmp_path).env == {}
